"""TensorBoard event files written with the ``tensorboard`` package alone (no TensorFlow, no torch)."""

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compoconf import ConfigInterface, register
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

from .base import ToolLoggerInterface, flatten_config, hparam_value, tool_dir
from .event_file import EventFile
from .images import encode_png

_STATUS = {
    "success": api_pb2.STATUS_SUCCESS,
    "failed": api_pb2.STATUS_FAILURE,
    "interrupted": api_pb2.STATUS_UNKNOWN,
}


@dataclass
class TensorboardToolLoggerConfig(ConfigInterface):
    """Event files go to ``(save_dir or log_dir)/name/version``; by default straight into the run directory."""

    name: str = ""
    save_dir: str = ""
    use_timestamp_version: bool = False
    version: str | None = None
    flush_secs: float = 30.0


def _hparams_summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> summary_pb2.Summary:
    summary = summary_pb2.Summary()
    summary.value.add(tag=tag, metadata=metadata.create_summary_metadata(data), tensor=metadata.NULL_TENSOR)
    return summary


@register
class TensorboardToolLogger(ToolLoggerInterface):
    """Scalars as ``simple_value`` (float32), images as PNG, the config in the hparams plugin.

    Resuming writes a ``SessionLog.START`` event after the restored step, which TensorBoard's reader takes
    as the signal to drop whatever the interrupted run wrote after that step.
    """

    config: TensorboardToolLoggerConfig

    def __init__(self, config: TensorboardToolLoggerConfig, log_dir: Path):
        self.config = config
        self.log_dir = tool_dir(log_dir, config.save_dir, config.name, config.version, config.use_timestamp_version)
        self._writer = EventFile(str(self.log_dir), config.flush_secs)
        self._session_events: list[event_pb2.Event] = []
        self._closed = False

    def _write(self, step: int, summary: summary_pb2.Summary) -> event_pb2.Event:
        event = event_pb2.Event(wall_time=time.time(), step=step, summary=summary)
        self._writer.write(event)
        return event

    def log_scalars(self, metrics: dict[str, float], step: int) -> None:
        summary = summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag=key, simple_value=value) for key, value in metrics.items()]
        )
        self._write(step, summary)

    def log_hparams(self, config: dict[str, Any], metrics: dict[str, float] | None = None) -> None:
        hparams = {key: hparam_value(value) for key, value in flatten_config(config).items()}
        start = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
        for key, value in hparams.items():
            if isinstance(value, bool):
                start.hparams[key].bool_value = value
            elif isinstance(value, (int, float)):
                start.hparams[key].number_value = value
            else:
                start.hparams[key].string_value = value
        events = []
        if metrics:
            experiment = api_pb2.Experiment(
                time_created_secs=time.time(),
                hparam_infos=[api_pb2.HParamInfo(name=key) for key in hparams],
                metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=key)) for key in metrics],
            )
            data = plugin_data_pb2.HParamsPluginData(experiment=experiment)
            events.append(self._write(0, _hparams_summary(metadata.EXPERIMENT_TAG, data)))
        data = plugin_data_pb2.HParamsPluginData(session_start_info=start)
        events.append(self._write(0, _hparams_summary(metadata.SESSION_START_INFO_TAG, data)))
        if metrics:
            self.log_scalars(metrics, 0)
        self._session_events = events

    def log_image(self, key: str, image, step: int) -> None:
        height, width, channels = image.shape
        encoded = summary_pb2.Summary.Image(
            height=height, width=width, colorspace=channels, encoded_image_string=encode_png(image)
        )
        self._write(step, summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=key, image=encoded)]))

    def resume(self, step: int) -> None:
        restart = step + 1
        marker = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
        self._writer.write(event_pb2.Event(wall_time=time.time(), step=restart, session_log=marker))
        if restart <= 0:  # the restart also discards this session's hparams (step 0): write them again
            for event in self._session_events:
                self._writer.write(event)

    def flush(self) -> None:
        if not self._closed:
            self._writer.flush()

    def close(self, status: str = "success") -> None:
        if self._closed:
            return
        if self._session_events:
            end = plugin_data_pb2.SessionEndInfo(status=_STATUS[status], end_time_secs=time.time())
            data = plugin_data_pb2.HParamsPluginData(session_end_info=end)
            self._write(0, _hparams_summary(metadata.SESSION_END_INFO_TAG, data))
        self._writer.close()
        self._closed = True
