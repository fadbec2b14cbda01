"""TensorBoard logging of every run, when the ``tensorboard`` package is installed.

A built-in observer plugin (entry point ``tensorboard``; switch it off with
``AIGC_DISABLE_PLUGINS=tensorboard``): it writes ``<output_dir>/tensorboard/`` with the
training values as scalars, each filter's scores per sampling batch as histograms, the
contact sheet as an image and the evaluations as scalars, so
``tensorboard --logdir ~/.aigc-run/runs`` shows every run side by side. Without the package
it does nothing: ``pip install 'aigc-run[tensorboard]'`` turns it on.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Any

from aigc_run import hookimpl
from aigc_run.contract.components import FilteredBatch, RunInfo

FOLDER = "tensorboard"
_writers: dict[int, Any] = {}  # run id -> SummaryWriter, for the runs of this process
_batches: dict[int, int] = {}  # run id -> sampling batches seen, the histograms' step


def available() -> bool:
    return find_spec("tensorboard") is not None


@hookimpl
def before_run(run: RunInfo) -> None:
    if not available():
        return
    from torch.utils.tensorboard import SummaryWriter

    _writers[run.id] = SummaryWriter(log_dir=str(Path(run.output_dir) / FOLDER))
    _batches[run.id] = 0


@hookimpl
def after_training_step(run: RunInfo, step: int, values: dict[str, float]) -> None:
    if (writer := _writer(run)) is not None:
        for name, value in values.items():
            writer.add_scalar(f"train/{name}", value, step)


@hookimpl
def after_samples_filtered(run: RunInfo, batch: FilteredBatch) -> None:
    if (writer := _writer(run)) is None:
        return
    import numpy as np

    step = _batches[run.id]
    _batches[run.id] = step + 1
    for name, scores in batch.scores.items():
        if scores:
            writer.add_histogram(f"filters/{name}", np.asarray(scores, dtype=float), step)
    writer.add_scalar("sampling/accepted_in_batch", sum(batch.accepted), step)


@hookimpl
def after_run(run: RunInfo, status: str) -> None:
    if (writer := _writer(run, close=True)) is None:
        return
    try:
        sheet = Path(run.output_dir) / "contact_sheet.png"
        if sheet.is_file():
            import numpy as np
            from PIL import Image

            with Image.open(sheet) as image:
                writer.add_image("samples/contact_sheet", np.asarray(image.convert("RGB")),
                                 dataformats="HWC")  # fmt: skip
        for metric, value in _evaluations(run.id).items():
            writer.add_scalar(f"evaluation/{metric}", value)
    finally:
        writer.close()


@hookimpl
def on_run_error(run: RunInfo, error: BaseException) -> None:
    if (writer := _writer(run, close=True)) is not None:
        writer.close()  # what was logged up to the error stays readable


def _writer(run: RunInfo, close: bool = False) -> Any:
    """The run's writer, if this process opened one (and forget it when closing)."""
    if not _writers:  # the common case without tensorboard; also spares run.id
        return None
    if close:
        _batches.pop(run.id, None)
        return _writers.pop(run.id, None)
    return _writers.get(run.id)


def _evaluations(run_id: int) -> dict[str, float]:
    """The run's evaluations so far (after_run comes after them), read from the registry:
    the lifecycle hooks do not carry them."""
    from aigc_run.registry import Registry
    from aigc_run.settings import Settings

    registry = Registry(Settings().registry_url)
    try:
        return dict(registry.get_run(run_id).evaluations)
    finally:
        registry.close()
