"""Image normalisation and PNG encoding without an imaging library (TensorBoard stores PNG bytes)."""

import struct
import zlib

import numpy as np

_PNG_COLOR_TYPE = {1: 0, 3: 2, 4: 6}  # grey, RGB, RGBA


def as_uint8_image(key: str, image) -> np.ndarray:
    """(H, W) or (H, W, C) uint8, or float in [0, 1], to an (H, W, C) uint8 array with C in {1, 3, 4}."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in _PNG_COLOR_TYPE or 0 in array.shape:
        raise ValueError(f"Image {key!r} must have shape (H, W) or (H, W, C) with C in 1, 3, 4; got {array.shape}.")
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"Image {key!r} must be uint8 or float in [0, 1]; got dtype {array.dtype}.")
    if not np.all(np.isfinite(array)) or array.min() < 0.0 or array.max() > 1.0:
        raise ValueError(f"Float image {key!r} must lie in [0, 1]; got [{array.min()}, {array.max()}].")
    return np.round(array * 255.0).astype(np.uint8)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, C) uint8 image (8 bit, no interlace, filter 0 on every row)."""
    height, width, channels = image.shape
    rows = np.concatenate([np.zeros((height, 1), np.uint8), image.reshape(height, width * channels)], axis=1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, _PNG_COLOR_TYPE[channels], 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(np.ascontiguousarray(rows).tobytes(), 6))
        + chunk(b"IEND", b"")
    )
