"""TensorBoard files written by the Logger, read back with TensorBoard's own reader."""

import io
import time

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata as hp_metadata

from jax_trainer.logger.config import LoggerConfig, TensorboardToolLoggerConfig
from jax_trainer.logger.logger import Logger


def read_events(path) -> EventAccumulator:
    accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def scalar_series(accumulator, tag):
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def start_new_second():
    """Event files sort by their creation second first; a restarted run never starts in its predecessor's second."""
    now = time.time()
    time.sleep(int(now) + 1 - now)


@pytest.fixture
def run(tmp_path):
    logger = Logger(LoggerConfig(log_dir=str(tmp_path / "run")))
    yield logger
    logger.finalize("success")


def test_scalars_tags_steps_and_values(run):
    run.log_scalars({"train/loss": 0.5, "train/acc": np.float32(0.25)}, step=10)
    run.log_scalars({"train/loss": 1.0 / 3.0}, step=20)
    run.log_epoch_metrics({"val/acc": 0.75}, epoch=1, mode="val", step=20)
    run.finalize("success")
    events = read_events(run.log_dir)
    assert sorted(events.Tags()["scalars"]) == ["train/acc", "train/loss", "val/acc"]
    assert scalar_series(events, "train/loss") == [(10, 0.5), (20, float(np.float32(1.0 / 3.0)))]
    assert scalar_series(events, "train/acc") == [(10, 0.25)]
    assert scalar_series(events, "val/acc") == [(20, 0.75)]
    assert list(run.log_dir.glob("events.out.tfevents.*")), "event file must sit directly in log_dir"


def test_hparams_plugin_data(run):
    config = {"trainer": {"train_epochs": 3, "debug": False}, "model": {"hidden_dims": [8, 8]}, "seed": 42}
    run.log_hparams(config)
    run.finalize("failed")
    content = read_events(run.log_dir).PluginTagToContent("hparams")
    start = hp_metadata.parse_session_start_info_plugin_data(content[hp_metadata.SESSION_START_INFO_TAG])
    assert start.hparams["trainer.train_epochs"].number_value == 3
    assert start.hparams["trainer.debug"].bool_value is False
    assert start.hparams["model.hidden_dims"].string_value == "[8, 8]"
    assert start.hparams["seed"].number_value == 42
    end = hp_metadata.parse_session_end_info_plugin_data(content[hp_metadata.SESSION_END_INFO_TAG])
    assert end.status == 2  # STATUS_FAILURE


def test_hparams_with_metrics_declares_them(run):
    run.log_hparams({"lr": 0.1}, metrics={"hp/final_acc": 0.9})
    run.flush()
    events = read_events(run.log_dir)
    experiment = hp_metadata.parse_experiment_plugin_data(
        events.PluginTagToContent("hparams")[hp_metadata.EXPERIMENT_TAG]
    )
    assert [info.name.tag for info in experiment.metric_infos] == ["hp/final_acc"]
    assert scalar_series(events, "hp/final_acc") == [(0, float(np.float32(0.9)))]


def test_image_and_figure(run):
    image = np.zeros((4, 6, 3), np.uint8)
    image[1, 2] = (255, 128, 7)
    run.log_image("samples/img", image, step=5)
    run.log_image("samples/gray", np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4), step=6)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 1), dpi=20)
    figure.add_subplot().plot([0, 1], [1, 0])
    run.log_figure("plots/line", figure, step=7)
    run.flush()
    events = read_events(run.log_dir)
    assert sorted(events.Tags()["images"]) == ["plots/line", "samples/gray", "samples/img"]
    stored = events.Images("samples/img")[0]
    assert (stored.step, stored.width, stored.height) == (5, 6, 4)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(stored.encoded_image_string))), image)
    gray = np.asarray(Image.open(io.BytesIO(events.Images("samples/gray")[0].encoded_image_string)))
    np.testing.assert_array_equal(gray, np.round(np.linspace(0, 1, 12) * 255).reshape(3, 4).astype(np.uint8))
    figure_event = events.Images("plots/line")[0]
    assert (figure_event.step, figure_event.width, figure_event.height) == (7, 40, 20)


def test_bad_images_name_the_key(run):
    with pytest.raises(ValueError, match="too_bright"):
        run.log_image("too_bright", np.full((2, 2, 3), 2.0), step=0)
    with pytest.raises(ValueError, match="bad_shape"):
        run.log_image("bad_shape", np.zeros((2, 2, 2), np.uint8), step=0)


def test_resume_discards_what_the_interrupted_run_wrote_after_the_checkpoint(tmp_path):
    config = LoggerConfig(log_dir=str(tmp_path))
    first = Logger(config)
    first.log_hparams({"seed": 1})
    first.log_scalars({"loss": 1.0}, step=1)
    first.log_scalars({"loss": 2.0}, step=2)
    state = first.state_dict()
    first.log_scalars({"loss": 99.0}, step=3)  # after the checkpoint: lost with the crash
    first.finalize("interrupted")
    start_new_second()
    second = Logger(config)
    second.load_state_dict(state)
    second.log_scalars({"loss": 3.0}, step=3)
    second.finalize("success")
    events = read_events(tmp_path)
    assert scalar_series(events, "loss") == [(1, 1.0), (2, 2.0), (3, 3.0)]
    assert hp_metadata.SESSION_START_INFO_TAG in events.PluginTagToContent("hparams")


def test_resume_before_any_step_keeps_this_sessions_hparams(tmp_path):
    config = LoggerConfig(log_dir=str(tmp_path))
    first = Logger(config)
    state = first.state_dict()
    first.log_scalars({"loss": 5.0}, step=0)
    first.finalize("interrupted")
    start_new_second()
    second = Logger(config)
    second.log_hparams({"seed": 7})
    second.load_state_dict(state)
    second.finalize("success")
    events = read_events(tmp_path)
    assert events.Scalars("loss") == []
    content = events.PluginTagToContent("hparams")
    start = hp_metadata.parse_session_start_info_plugin_data(content[hp_metadata.SESSION_START_INFO_TAG])
    assert start.hparams["seed"].number_value == 7


def test_save_dir_name_and_version_place_the_files(tmp_path):
    tool = TensorboardToolLoggerConfig(save_dir=str(tmp_path / "tb"), name="exp", version="v3")
    logger = Logger(LoggerConfig(log_dir=str(tmp_path / "run"), tool_config=tool))
    logger.log_scalars({"x": 1.0}, step=0)
    logger.finalize("success")
    assert list((tmp_path / "tb" / "exp" / "v3").glob("events.out.tfevents.*"))
    assert not list((tmp_path / "run").glob("events.out.tfevents.*"))
