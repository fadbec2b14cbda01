"""The hook implementations of aigc-medical, found through the ``aigc_run.plugins`` entry point.

Nothing here imports torch: the filters import it when they first score a batch.
"""

from __future__ import annotations

from pathlib import Path

from aigc_medical import filters, loaders, preprocess, privacy, writers
from aigc_run import (
    DatasetSource,
    Preprocessor,
    QualityFilter,
    RunInfo,
    SampleWriter,
    ScenarioFile,
    hookimpl,
)

SCENARIO_DIR = Path(__file__).parent / "scenarios"


@hookimpl
def register_datasets() -> list[DatasetSource]:
    return [
        DatasetSource(
            name="scans",
            description=(
                "grayscale scans: a MedMNIST-style .npz, DICOM files and series, NIfTI "
                "volumes (sliced), a folder of PNG/JPEG/DICOM/NIfTI scans (class "
                "subfolders or flat), or built-in synthetic phantom chest scans"
            ),
            load=loaders.load,
            channels=1,
            # The classes depend on the data (normal/lesion for the phantoms, the file's
            # own for an .npz or a folder), so the engine takes them from the samples.
            classes=(),
            builtin=True,
            notice=(
                "no --data given: training on built-in synthetic phantom scans (not real patients)"
            ),
        )
    ]


@hookimpl
def register_preprocessors() -> list[Preprocessor]:
    return [
        Preprocessor(
            name="normalize-intensity",
            description="stretch the 1st-99th intensity percentile of each scan to 0-255",
            apply=preprocess.normalize_intensity,
        ),
    ]


@hookimpl
def register_quality_filters() -> list[QualityFilter]:
    return [
        QualityFilter(
            name="intensity-plausibility",
            description=(
                "RMS z-score of a sample's intensity quantiles, contrast and roughness "
                "against the training images (lower is better; blank or saturated fails)"
            ),
            score=filters.intensity_plausibility,
            threshold=filters.PLAUSIBILITY_THRESHOLD,
            higher_is_better=False,
            batch_independent=True,
        ),
        QualityFilter(
            name="memorisation",
            description=(
                "RMS pixel distance of a sample's 16x16 thumbnail to the nearest training "
                "image (higher is better; a copy of a training image scores ~0 and fails)"
            ),
            score=filters.nearest_training_distance,
            threshold=filters.MEMORISATION_THRESHOLD,
            higher_is_better=True,
            batch_independent=True,
        ),
        QualityFilter(
            name="anatomical-plausibility",
            description=(
                "probability, by the domain classifier trained on the training scans, "
                "that a sample shows the class it was drawn for (higher is better)"
            ),
            score=filters.anatomical_plausibility,
            threshold=filters.ANATOMY_THRESHOLD,
            higher_is_better=True,
            batch_independent=True,
        ),
    ]


@hookimpl
def register_sample_writers() -> list[SampleWriter]:
    return [
        SampleWriter(
            name="dicom",
            description=(
                "one DICOM Secondary Capture file per sample: fresh UIDs, no patient data, "
                "marked DERIVED/SECONDARY/SYNTHETIC"
            ),
            write=writers.write_dicom,
        )
    ]


@hookimpl
def register_scenarios() -> list[ScenarioFile]:
    return [
        ScenarioFile(
            name="medical",
            description=(
                "class-conditional GAN on chest scans (built-in phantoms, or --data "
                "pneumoniamnist.npz), filtered for plausibility and memorisation"
            ),
            path=SCENARIO_DIR / "medical.toml",
        )
    ]


@hookimpl
def after_run(run: RunInfo, status: str) -> None:
    """A medical run's privacy audit, beside its samples (privacy_audit.md and .json)."""
    if run.config.get("plugin") == "medical":
        path = privacy.write_audit(run)
        if path is not None:
            print(f"privacy audit: {path}")
