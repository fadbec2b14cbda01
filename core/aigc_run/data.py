"""From a plugin's DatasetSource to one uint8 array on disk, decoded and preprocessed once.

The array (N x C x H x W, uint8) is cached under ``$AIGC_HOME/cache`` keyed by the source,
the data's files (names, sizes, modification times), the options and the preprocessing
steps, and read back memory-mapped: a second run does not decode again, and no float copy
of the whole dataset is ever made.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aigc_run.contract.components import DataRequest, DatasetSource, Preprocessor, Sample, Skipped
from aigc_run.contract.errors import AigcError, ConfigError, DataError, PluginError
from aigc_run.contract.kinds import DATASETS, STEPS
from aigc_run.plugins import Contribution, Plugins
from aigc_run.scenario import Scenario

CACHE_VERSION = 1  # bump when the cache layout or the engine's resizing changes


@dataclass(frozen=True)
class Dataset:
    images: np.ndarray  # uint8 N x C x H x W, memory-mapped from the cache
    labels: np.ndarray  # int64 N, indices into class_names (all 0 when unlabelled)
    class_names: list[str]  # [] when the data has no labels
    skipped: dict[str, int]  # reason -> count of inputs the loader could not use
    from_cache: bool

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        return max(len(self.class_names), 1)

    def split(self, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices (train, held out): a seeded shuffle, at most 1,000 held out."""
        order = np.random.default_rng(seed).permutation(len(self))
        held = min(int(len(self) * fraction), 1000) if len(self) >= 20 else 0
        return np.sort(order[held:]), np.sort(order[:held])


def resolve_source(plugins: Plugins, scenario: Scenario) -> Contribution[DatasetSource]:
    sources = plugins.contributions(DATASETS)
    if scenario.data.source not in sources:
        raise ConfigError(
            f"data.source: no dataset source named {scenario.data.source!r}",
            f"installed sources: {', '.join(sorted(sources)) or 'none'} (see `aigc-run plugins`)",
        )
    return sources[scenario.data.source]


def resolve_steps(plugins: Plugins, scenario: Scenario) -> list[Contribution[Preprocessor]]:
    steps = plugins.contributions(STEPS)
    unknown = [name for name in scenario.preprocess.steps if name not in steps]
    if unknown:
        raise ConfigError(
            f"preprocess.steps: unknown step {unknown[0]!r}",
            f"installed steps: {', '.join(sorted(steps)) or 'none'}",
        )
    return [steps[name] for name in scenario.preprocess.steps]


def load_dataset(
    plugins: Plugins,
    scenario: Scenario,
    cache_dir: Path,
    say: Callable[[str], None] = print,
    progress: Callable[[Iterable[Any]], Iterable[Any]] = lambda items: items,
) -> Dataset:
    source = resolve_source(plugins, scenario)
    steps = resolve_steps(plugins, scenario)
    path = _data_path(scenario, source)
    if path is None and source.item.notice:
        say(source.item.notice)
    key = _cache_key(scenario, source, steps, path, plugins.versions)
    folder = cache_dir / key
    cached = (folder / "meta.json").is_file()
    if not cached:
        _build(scenario, source, steps, path, folder, progress)
    return _open(folder, from_cache=cached)


def _data_path(scenario: Scenario, source: Contribution[DatasetSource]) -> Path | None:
    if scenario.data.path is None:
        if not source.item.builtin:
            raise ConfigError(
                f"data.path: dataset source {source.item.name!r} needs your data",
                "give it with --data PATH or --set data.path=PATH",
            )
        return None
    path = Path(scenario.data.path).expanduser().absolute()
    if not path.exists():
        raise DataError(f"data path {path} does not exist", "check the --data path")
    return path


def _fingerprint(path: Path | None) -> list[Any]:
    """What changes when the user's data changes, without reading every byte."""
    if path is None:
        return []
    if path.is_file():
        stat = path.stat()
        return [path.name, stat.st_size, stat.st_mtime_ns]
    entries = []
    for root, _dirs, files in os.walk(path):
        for name in files:
            stat = os.stat(os.path.join(root, name))
            entries.append(
                (os.path.relpath(os.path.join(root, name), path), stat.st_size, stat.st_mtime_ns)
            )
    return sorted(entries)


def _cache_key(
    scenario: Scenario,
    source: Contribution[DatasetSource],
    steps: list[Contribution[Preprocessor]],
    path: Path | None,
    versions: dict[str, str],
) -> str:
    described = {
        "cache": CACHE_VERSION,
        "source": [source.plugin, versions.get(source.plugin), source.item.name],
        "steps": [[s.plugin, versions.get(s.plugin), s.item.name] for s in steps],
        "path": str(path),
        "files": _fingerprint(path),
        "data": scenario.data.model_dump(exclude={"path", "holdout"}),
        "seed": scenario.train.seed,
    }
    blob = json.dumps(described, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def _build(
    scenario: Scenario,
    source: Contribution[DatasetSource],
    steps: list[Contribution[Preprocessor]],
    path: Path | None,
    folder: Path,
    progress: Callable[[Iterable[Any]], Iterable[Any]],
) -> None:
    size, channels = scenario.data.image_size, source.item.channels
    request = DataRequest(path, scenario.data.options, size, channels, scenario.train.seed)
    pixels: list[np.ndarray] = []
    names: list[str] = []
    skipped: Counter[str] = Counter()
    limit = scenario.data.max_images
    for item in progress(_items(source, request)):
        if isinstance(item, Skipped):
            skipped[item.reason] += 1
            continue
        image = item.image
        for step in steps:
            image = _apply(step, image, size)
        pixels.append(to_array(image, size, channels))
        names.append(str(item.label))
        if limit is not None and len(pixels) >= limit:
            break
    if not pixels:
        found = ", ".join(f"{n} {reason}" for reason, n in skipped.items()) or "nothing"
        raise DataError(
            f"no usable images in {path or 'the built-in data'} (skipped: {found})",
            f"see `aigc-run plugins` for the layouts source {source.item.name!r} reads",
        )
    class_names = list(source.item.classes) or sorted(set(names) - {""})
    index = {name: i for i, name in enumerate(class_names)}
    unknown = [n for n in names if n and n not in index]
    if unknown:
        raise PluginError(
            source.plugin,
            "DatasetSource.load",
            f"label {unknown[0]!r} is not among the source's classes",
        )
    labels = np.array([index.get(n, 0) for n in names], dtype=np.int64)
    _write_atomically(folder, np.stack(pixels), labels, class_names, dict(skipped))


def _items(source: Contribution[DatasetSource], request: DataRequest) -> Iterable[Sample | Skipped]:
    """The loader's items, with its failures turned into errors that name the plugin."""
    try:
        for item in source.item.load(request):
            if not isinstance(item, Sample | Skipped):
                raise PluginError(
                    source.plugin,
                    "DatasetSource.load",
                    f"yielded a {type(item).__name__}, not a Sample or Skipped",
                )
            yield item
    except AigcError:
        raise
    except Exception as e:
        raise PluginError(
            source.plugin, f"dataset {source.item.name!r}", f"{type(e).__name__}: {e}"
        ) from e


def _apply(step: Contribution[Preprocessor], image: Any, size: int) -> Any:
    try:
        return step.item.apply(image, size)
    except Exception as e:
        raise PluginError(
            step.plugin, f"preprocessor {step.item.name!r}", f"{type(e).__name__}: {e}"
        ) from e


def to_array(image: Any, size: int, channels: int) -> np.ndarray:
    """Convert, centre-crop to a square if a step left it oblong, resize: C x H x W uint8."""
    from PIL import Image

    image = image.convert("L" if channels == 1 else "RGB")
    width, height = image.size
    if width != height:
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def _write_atomically(
    folder: Path,
    images: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    skipped: dict[str, int],
) -> None:
    # Written beside the final folder and renamed, so a killed run never leaves half a cache.
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    meta = {"class_names": class_names, "skipped": skipped, "shape": list(images.shape)}
    try:
        np.save(temporary / "images.npy", images)
        np.save(temporary / "labels.npy", labels)
        (temporary / "meta.json").write_text(json.dumps(meta, indent=1))
    except OSError as e:
        shutil.rmtree(temporary, ignore_errors=True)
        raise DataError(
            f"could not write the dataset cache in {folder.parent}: {e.strerror or e}",
            "free disk space, or point AIGC_HOME at a disk with room",
        ) from e
    try:
        os.replace(temporary, folder)
    except OSError:  # another process built the same cache first: keep theirs
        shutil.rmtree(temporary, ignore_errors=True)


def _open(folder: Path, from_cache: bool) -> Dataset:
    meta = json.loads((folder / "meta.json").read_text())
    return Dataset(
        images=np.load(folder / "images.npy", mmap_mode="r"),
        labels=np.load(folder / "labels.npy"),
        class_names=meta["class_names"],
        skipped=meta["skipped"],
        from_cache=from_cache,
    )
