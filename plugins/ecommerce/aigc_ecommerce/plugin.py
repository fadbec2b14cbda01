"""The hook implementations: what this plugin contributes to aigc-run.

Only cheap imports here (no torch): the engine loads plugins when the CLI starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from aigc_ecommerce import catalogue, demo, filters, folder, preprocess
from aigc_run import (
    ConfigError,
    DataRequest,
    DatasetSource,
    FilteredBatch,
    Preprocessor,
    QualityFilter,
    RunInfo,
    Sample,
    SampleWriter,
    ScenarioFile,
    Skipped,
    hookimpl,
)

DEMO_COUNT = 3000
DEMO_OPTIONS = ("demo_count",)
SCENARIO_FILE = Path(__file__).parent / "scenarios" / "ecommerce.toml"


def load_products(request: DataRequest) -> Iterable[Sample | Skipped]:
    """The ``products`` source: the demo catalogue without a path, else the user's folder."""
    if request.path is None:
        return _demo(request)
    return folder.load_folder(
        Path(request.path), request.options, request.image_size, known_extra=DEMO_OPTIONS
    )


def _demo(request: DataRequest) -> Iterator[Sample]:
    unknown = sorted(set(request.options) - set(DEMO_OPTIONS))
    if unknown:
        raise ConfigError(
            f"data.options: {', '.join(map(repr, unknown))} apply to a data folder, "
            "not to the built-in demo catalogue",
            "give --data PATH, or remove them; the demo takes only demo_count",
        )
    count = request.options.get("demo_count", DEMO_COUNT)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"data.options.demo_count: must be an integer >= 1 (got {count!r})")
    size = max(64, 2 * request.image_size)  # drawn at twice the training size, at least 64
    return demo.catalogue(count, request.seed, size)


@hookimpl
def register_datasets() -> list[DatasetSource]:
    return [
        DatasetSource(
            name="products",
            description=(
                "product photos: a folder of class subfolders, or a folder with a CSV of "
                "image,label (e.g. the clothing dataset); without --data, a synthetic "
                "demo catalogue of 6 product categories"
            ),
            load=load_products,
            channels=3,
            builtin=True,
            notice=(
                "no --data given: training on the built-in demo catalogue of synthetic "
                f"product images ({', '.join(demo.CATEGORIES)})"
            ),
        )
    ]


@hookimpl
def register_preprocessors() -> list[Preprocessor]:
    return [
        Preprocessor(
            "letterbox-white",
            "pad to a square on white, keeping the aspect ratio",
            preprocess.letterbox_white,
        ),
        Preprocessor(
            "autocontrast", "stretch each photo's levels (1% clipped)", preprocess.autocontrast
        ),
        Preprocessor(
            "whiten-background",
            "estimate the background from the border and paint it white (soft edge)",
            preprocess.whiten_background,
        ),
        Preprocessor(
            "object-crop",
            "square crop centred on the product, 8% margin, on white",
            preprocess.object_crop,
        ),
    ]


@hookimpl
def register_quality_filters() -> list[QualityFilter]:
    return [
        QualityFilter(
            name="background-clean",
            description="fraction of the border that is near-white and unsaturated "
            "(a clean white catalogue background)",
            score=filters.background_clean,
            threshold=filters.BACKGROUND_CLEAN_THRESHOLD,
            higher_is_better=True,
            batch_independent=True,
        ),
        QualityFilter(
            name="near-duplicate",
            description="RMS distance (8x8 thumbnails) to the nearest earlier image in the "
            "batch: the later of two near-copies fails",
            score=filters.near_duplicate,
            threshold=filters.NEAR_DUPLICATE_THRESHOLD,
            higher_is_better=True,
        ),
        QualityFilter(
            name="catalogue-copy",
            description="RMS distance (8x8 thumbnails) to the nearest training photo: "
            "a copy of a catalogue image fails",
            score=filters.catalogue_copy,
            threshold=filters.CATALOGUE_COPY_THRESHOLD,
            higher_is_better=True,
            batch_independent=True,
        ),
        QualityFilter(
            name="object-margin",
            description="smallest gap between the product's bounding box and the frame, "
            "as a share of the side: 0 when cut off or pushed to one side",
            score=filters.object_margin,
            threshold=filters.OBJECT_MARGIN_THRESHOLD,
            higher_is_better=True,
            batch_independent=True,
        ),
        QualityFilter(
            name="sharpness",
            description="standard deviation of the Laplacian on and around the product "
            "(low = blurred)",
            score=filters.sharpness,
            threshold=filters.SHARPNESS_THRESHOLD,
            higher_is_better=True,
            batch_independent=True,
        ),
        QualityFilter(
            name="colour-cast",
            description="chroma of the brightest 10% of pixels: a white page should be "
            "neutral (lower is better)",
            score=filters.colour_cast,
            threshold=filters.COLOUR_CAST_THRESHOLD,
            higher_is_better=False,
            batch_independent=True,
        ),
        QualityFilter(
            name="class-consistency",
            description="probability, by the domain classifier trained on the catalogue, "
            "that a sample shows the category it was drawn for",
            score=filters.class_consistency,
            threshold=filters.CLASS_CONSISTENCY_THRESHOLD,
            higher_is_better=True,
            batch_independent=True,
        ),
    ]


@hookimpl
def register_sample_writers() -> list[SampleWriter]:
    return [
        SampleWriter(
            catalogue.WRITER,
            "a PNG per product in a folder per category, plus a product feed "
            "(samples/feed.csv and feed.jsonl: file, category, seed, index, scores)",
            catalogue.write_catalogue,
        )
    ]


@hookimpl
def after_samples_filtered(run: RunInfo, batch: FilteredBatch) -> None:
    # The feed needs the seeds and scores, which the hook has and a writer does not.
    if catalogue.uses_catalogue(run):
        catalogue.append_feed(run.output_dir, batch)


@hookimpl
def register_scenarios() -> list[ScenarioFile]:
    return [
        ScenarioFile(
            name="ecommerce",
            description="class-conditional GAN on product photos; keeps samples on a clean "
            "white background; writes a PNG catalogue",
            path=SCENARIO_FILE,
        )
    ]
