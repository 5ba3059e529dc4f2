"""Data parallel training over 8 devices on one CPU: XLA is told to show the host as 8 devices.

The trainer puts its state on every device of the mesh (replicated) and splits each batch along its first axis,
so each device computes the gradient of 64 / 8 = 8 examples and ``jax.jit`` adds the all-reduce. The same script
runs unchanged on 8 GPUs or TPU cores: delete the two environment lines below.

Run:  python examples/data_parallel.py [--epochs 5] [--log-dir runs/data_parallel]
"""

import argparse
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")  # before jax is imported
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402  (after the environment it reads at import)
import numpy as np  # noqa: E402
from jax.sharding import Mesh  # noqa: E402

from jax_trainer.datasets import DigitsConfig, DigitsDataset  # noqa: E402
from jax_trainer.logger.config import LoggerConfig  # noqa: E402
from jax_trainer.optimizer import AdamWConfig  # noqa: E402
from jax_trainer.trainer import ImgClassifierTrainer, ImgClassifierTrainerConfig  # noqa: E402
from jax_trainer.zoo.configs import MLPClassifierConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--log-dir", default="runs/data_parallel")
    args = parser.parse_args()

    devices = jax.devices()
    if len(devices) != 8:
        flags = os.environ["XLA_FLAGS"]
        raise SystemExit(f"expected 8 devices, found {len(devices)}: is XLA_FLAGS set elsewhere? ({flags})")
    mesh = Mesh(np.array(devices), ("data",))  # the default too: all local devices on a "data" axis

    dataset = DigitsDataset(DigitsConfig(global_batch_size=64, val_size=0.15))  # 64 = 8 devices x 8 examples
    splits = dataset.build()
    logger = LoggerConfig(log_dir=args.log_dir, tool_config=None)
    config = ImgClassifierTrainerConfig(train_epochs=args.epochs, enable_progress_bar=False, logger=logger)
    model, optimizer = MLPClassifierConfig(hidden_dims=[128]), AdamWConfig(learning_rate=3e-3)
    trainer = ImgClassifierTrainer(config, model, optimizer, dataset.example_batch(), mesh=mesh)
    metrics = trainer.train_model(splits.train, splits.val, splits.test)

    kernel = jax.tree.leaves(trainer.model_state)[0]
    batch = trainer.placement.put_batch(next(iter(splits.val)))  # how the loop places a batch
    print(f"devices: {len(devices)} ({devices[0].platform}); a parameter lives on {len(kernel.sharding.device_set)}")
    print(f"per-device batch: {batch.input.addressable_shards[0].data.shape}")
    val, test = metrics[args.epochs]["val/acc"], metrics["test"]["test/acc"]
    print(f"val/acc after {args.epochs} epochs: {val:.3f}; test: {test:.3f}")


if __name__ == "__main__":
    main()
