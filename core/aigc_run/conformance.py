"""The plugin conformance check behind ``aigc_run.testing.check_plugin`` and
``aigc-run plugins check``.

It registers one plugin beside the engine's built-ins, calls every hook the plugin
implements and tries what each hook returned on small real inputs: it loads a few images
from each dataset, runs preprocessors, filters, writers, metrics and model families on a
random batch, validates each scenario against the names that exist, and calls the
lifecycle hooks with a throwaway run. Every problem is collected, so one report lists
them all, each naming the plugin's part that has it.

It imports torch (filters and models need it), so the CLI imports this module only inside
``aigc-run plugins check``.
"""

from __future__ import annotations

import itertools
import math
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from aigc_run import __version__
from aigc_run.contract.components import (
    BaseModel,
    DataRequest,
    DatasetSource,
    FilterContext,
    FilteredBatch,
    Metric,
    ModelFamily,
    ModelSpec,
    Preprocessor,
    QualityFilter,
    RunInfo,
    Sample,
    SampleWriter,
    ScenarioFile,
    Skipped,
)
from aigc_run.contract.errors import AigcError, PluginCheckError, PluginError, describe
from aigc_run.contract.kinds import (
    BASE_MODELS,
    BY_HOOK,
    DATASETS,
    FILTERS,
    KINDS,
    METRICS,
    MODEL_FAMILIES,
    SCENARIOS,
    STEPS,
    WRITERS,
    Kind,
)
from aigc_run.plugins import (
    BUILTIN,
    ENTRY_POINT_GROUP,
    Plugins,
    engine_requirement,
    incompatibility,
)

PROBE_ITEMS = 16  # items read from a dataset: enough to find two usable ones
SIZE = 16  # image side of the random batches (the smallest a model family must build)
BATCH = 4


@dataclass
class PluginReport:
    """What ``check_plugin`` found: every problem at once, and what it looked at."""

    plugin: str
    version: str = "unknown"
    checked: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        if self.problems:
            raise PluginCheckError(self.plugin, self.problems)

    def __str__(self) -> str:
        lines = [f"plugin {self.plugin} {self.version}"]
        lines += [f"  ok    {line}" for line in self.checked]
        lines += [f"  note  {line}" for line in self.notes]
        lines += [f"  FAIL  {line}" for line in self.problems]
        verdict = "passes" if self.ok else f"has {len(self.problems)} problem(s)"
        lines.append(f"plugin {self.plugin!r} {verdict}")
        return "\n".join(lines)


def plugin_name(plugin: object) -> str:
    """The entry-point name a plugin module is installed under, else its module name."""
    module = getattr(plugin, "__name__", None)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if module is not None and ep.value == module:
            return ep.name
    return module or type(plugin).__name__


def check_plugin(
    plugin: ModuleType | object,
    name: str | None = None,
    *,
    data: Path | str | None = None,
    version: str = "unknown",
) -> PluginReport:
    """Check a plugin against the contract; every problem found is in the report.

    ``data`` is a path for the dataset sources that have no built-in default (their
    loaders are probed on it); without it they are skipped, with a note.
    ``report.raise_for_problems()`` turns a failed report into one error listing them all.
    """
    from aigc_run import builtin

    plugins = Plugins(load_entry_points=False)  # holds the engine's built-ins already
    if plugin is builtin:
        name, version = BUILTIN, __version__
    name = name or plugin_name(plugin)
    report = PluginReport(name, version)
    try:
        if plugin is not builtin:
            plugins.register(plugin, name, version)
    except (PluginError, ValueError) as e:  # ValueError: a name pluggy already holds
        report.problems.append(e.message if isinstance(e, PluginError) else str(e))
        return report  # nothing can be called on a plugin that does not register
    hooks = plugins.hooks_of(name)
    if not hooks:
        report.problems.append("implements no hooks (mark them with @aigc_run.hookimpl)")
    with tempfile.TemporaryDirectory(prefix="aigc-check-") as scratch:
        _Checker(plugins, name, report, Path(scratch), data).run(hooks)
    return report


class _Checker:
    def __init__(
        self, plugins: Plugins, name: str, report: PluginReport, scratch: Path, data: Any
    ) -> None:
        self.plugins = plugins
        self.name = name
        self.report = report
        self.scratch = scratch
        self.data = Path(data) if data is not None else None
        # The built-ins alone, whose names a plugin must not take (none when checking them).
        self.engine = None if name == BUILTIN else Plugins(load_entry_points=False)
        self.found: dict[str, list[Any]] = {}  # hook -> the valid objects it returned
        self.images: list[Any] = []  # PIL images the datasets yielded, for preprocessors

    def problem(self, text: str) -> None:
        self.report.problems.append(text)

    def run(self, hooks: list[str]) -> None:
        for kind in KINDS:
            if kind.hook in hooks:
                self.found[kind.hook] = self.collect(kind)
        probes: dict[Kind[Any], Callable[[Any], None]] = {
            DATASETS: self.dataset,
            STEPS: self.preprocessor,
            FILTERS: self.quality_filter,
            WRITERS: self.writer,
            METRICS: self.metric,
            MODEL_FAMILIES: self.model_family,
            SCENARIOS: self.scenario,
            BASE_MODELS: self.base_model,
        }
        for kind in KINDS:  # datasets first: their images feed the rest
            for item in self.found.get(kind.hook, []):
                try:
                    probes[kind](item)
                except Exception as e:  # the check itself must finish and report
                    self.problem(f"{kind.noun} {item.name!r} raised {describe(e)}")
        self.lifecycle([hook for hook in hooks if hook not in BY_HOOK])

    # -- contributions ------------------------------------------------------------------

    def collect(self, kind: Kind[Any]) -> list[Any]:
        hook = kind.hook
        try:
            returned = self.plugins.call_plugin(self.name, hook)
        except Exception as e:
            self.problem(f"{hook} raised {describe(e)}")
            return []
        if returned is None:
            return []
        if not isinstance(returned, list | tuple):
            self.problem(f"{hook} returned {type(returned).__name__}, not a list")
            return []
        builtin = set(self.engine.contributions(kind)) if self.engine else set()
        valid: list[Any] = []
        for item in returned:
            problem = kind.problem(item)
            if problem:
                self.problem(f"{hook} {problem}")
            elif item.name in builtin:
                self.problem(f"{hook}: the name {item.name!r} is taken by {BUILTIN!r}")
            elif item.name in {v.name for v in valid}:
                self.problem(f"{hook}: the name {item.name!r} is registered twice")
            else:
                valid.append(item)
        return valid

    # -- probes -------------------------------------------------------------------------

    def dataset(self, source: DatasetSource) -> None:
        where = f"dataset {source.name!r}"
        if self.data is None and not source.builtin:
            self.report.notes.append(
                f"{where} has no built-in data and was not probed: give a folder with --data"
            )
            return
        request = DataRequest(self.data, {}, SIZE * 2, source.channels, seed=0)
        items, failed = _first_items(source, request)
        if failed:
            self.problem(f"{where}: load raised {failed}")
            return
        samples = []
        for number, item in enumerate(items):
            if isinstance(item, Skipped):
                continue
            problem = _sample_problem(item, source)
            if problem:
                self.problem(f"{where}: item {number} {problem}")
            else:
                samples.append(item)
        if len(samples) < 2:
            self.problem(
                f"{where}: {len(samples)} usable image(s) in its first {PROBE_ITEMS} items; "
                "training needs a batch of at least two"
            )
            return
        import numpy as np

        from aigc_run.data import to_array  # the engine's own conversion, as in a run

        batch = np.stack([to_array(s.image, SIZE, source.channels) for s in samples[:2]])
        if batch.shape != (2, source.channels, SIZE, SIZE) or batch.dtype != np.uint8:
            self.problem(f"{where}: a batch of two became {batch.dtype} {batch.shape}")
        elif all(image.min() == image.max() for image in batch):
            self.problem(f"{where}: the first images are blank (every pixel {batch.max()})")
        if source.builtin and self.data is None:
            again, _ = _first_items(source, request)
            first = next((i for i in again if isinstance(i, Sample)), None)
            if first is None or first.image.tobytes() != samples[0].image.tobytes():
                self.problem(f"{where}: the built-in data differs between loads with one seed")
        self.images += [s.image for s in samples[:2]]
        self.report.checked.append(
            f"{where}: {len(samples)} images read, a batch of two is uint8 "
            f"{source.channels}x{SIZE}x{SIZE}"
        )

    def preprocessor(self, step: Preprocessor) -> None:
        from PIL import Image

        inputs = self.images[:2] or [_random_pil("RGB"), _random_pil("L")]
        for image in inputs:
            out = step.apply(image.copy(), SIZE)
            if not isinstance(out, Image.Image) or min(out.size) < 1:
                self.problem(
                    f"preprocessor {step.name!r} returned {type(out).__name__}, not a PIL image"
                )
                return
        self.report.checked.append(f"preprocessor {step.name!r}: PIL image in, PIL image out")

    def quality_filter(self, qf: QualityFilter) -> None:
        import torch

        from aigc_run.run.filtering import score_filter

        for channels in self.channels():
            images, context = _random_batch(channels, self.class_names())
            before = images.clone()
            try:
                scores = score_filter(self.name, qf, images, context)
                if qf.batch_independent:  # the batch in two calls: each image scores the same
                    half = len(images) // 2
                    parts = [
                        score_filter(
                            self.name,
                            qf,
                            images[part],
                            replace(context, labels=context.labels[part]),
                        )
                        for part in (slice(0, half), slice(half, None))
                    ]
            except PluginError as e:
                detail = e.message.split(": ", 1)[-1]
                self.problem(f"quality filter {qf.name!r} on {channels}-channel images: {detail}")
                return
            if not torch.equal(images, before):
                self.problem(f"quality filter {qf.name!r} changed the images it scored")
                return
            if qf.batch_independent and not torch.allclose(
                torch.cat(parts).double().cpu(), scores.double().cpu(), rtol=1e-4, atol=1e-6
            ):
                self.problem(
                    f"quality filter {qf.name!r} says batch_independent=True, but an image's "
                    "score changed when its batch was scored in two halves: leave it False"
                )
                return
        alone = ", each image's alone" if qf.batch_independent else ""
        self.report.checked.append(f"quality filter {qf.name!r}: one finite score per image{alone}")

    def writer(self, writer: SampleWriter) -> None:
        import torch

        folder = self.scratch / f"writer-{writer.name}"
        folder.mkdir()
        images = torch.randint(0, 256, (2, self.channels()[0], SIZE, SIZE), dtype=torch.uint8)
        written = writer.write(folder, ["a/000000", "b/000001"], images)
        where = f"sample writer {writer.name!r}"
        if not isinstance(written, list) or len(written) != 2:
            self.problem(f"{where} returned {written!r}, not a list of two file names")
        elif missing := [f for f in written if not (folder / str(f)).is_file()]:
            self.problem(f"{where} returned names of files it did not write: {missing}")
        else:
            self.report.checked.append(f"{where}: wrote {', '.join(map(str, written))}")

    def metric(self, metric: Metric) -> None:
        import torch

        shape = (8, self.channels()[0], SIZE, SIZE)
        real = torch.randint(0, 256, shape, dtype=torch.uint8)
        if metric.uses_context:
            with tempfile.TemporaryDirectory() as folder:
                value = metric.compute(_random_evaluation(shape, Path(folder)))
        else:
            value = metric.compute(real, torch.randint(0, 256, shape, dtype=torch.uint8))
        figures = value if isinstance(value, Mapping) else {metric.name: value}
        # NaN is allowed for a figure marked not measurable (``<figure>:needs`` beside it)
        bad = {
            k: v
            for k, v in figures.items()
            if (not _finite_number(v) and f"{k}:needs" not in figures) or isinstance(v, bool)
        }
        if bad or not figures:
            self.problem(f"metric {metric.name!r} returned {value!r}, not a finite number")
        else:
            shown = ", ".join(f"{k} {float(v):.4g}" for k, v in figures.items())
            self.report.checked.append(f"metric {metric.name!r}: {shown} on random images")

    def model_family(self, family: ModelFamily) -> None:
        import torch

        from aigc_run.scenario import ModelConfig, TrainConfig

        where = f"model family {family.name!r}"
        options = ModelConfig(family=family.name, width=8, latent_dim=8).model_dump()
        spec = ModelSpec(3, SIZE, 2, True, options, TrainConfig().model_dump(), "cpu")
        torch.manual_seed(0)
        model = family.create(spec)
        images = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
        labels = torch.tensor([0, 1])
        losses = model.train_step(images, labels)
        if not isinstance(losses, Mapping) or not all(_finite_number(v) for v in losses.values()):
            self.problem(f"{where}: train_step returned {losses!r}, not finite losses by name")
        noise = torch.randn(2, model.latent_dim)
        out = model.generate(noise, labels)
        if not isinstance(out, torch.Tensor) or out.shape != (2, 3, SIZE, SIZE):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            self.problem(f"{where}: generate returned {shape}, not (2, 3, {SIZE}, {SIZE})")
            return
        if not torch.isfinite(out).all() or out.abs().max() > 1.0 + 1e-4:
            self.problem(f"{where}: generate returned values outside [-1, 1]")
        copy = family.create(spec)
        copy.load_state_dict(model.state_dict())
        if not torch.allclose(copy.generate(noise, labels), model.generate(noise, labels)):
            self.problem(f"{where}: a copy loaded from state_dict() generates other images")
            return
        self.report.checked.append(f"{where}: trains a step, generates, reloads its state")

    def base_model(self, item: BaseModel) -> None:
        from aigc_run.checkpoints import load, problem_with

        where = f"base model {item.name!r}"
        if problem := problem_with(Path(item.checkpoint), item.sha256):
            self.problem(f"{where}: {item.checkpoint} {problem}")
            return
        builtin = self.engine.contributions(MODEL_FAMILIES) if self.engine else {}
        families = {n: c.item for n, c in builtin.items()}
        families |= {f.name: f for f in self.found.get(MODEL_FAMILIES.hook, [])}
        if item.family not in families:
            self.problem(f"{where}: no model family {item.family!r} (from this plugin or aigc-run)")
            return
        classes = len(item.classes)
        spec = ModelSpec(
            channels=item.channels,
            image_size=item.image_size,
            num_classes=classes,
            conditional=classes > 1,
            options={"family": item.family, **item.model},
            train={},
            device="cpu",
        )
        model = families[item.family].create(spec)
        if not model.start_from(load(item.checkpoint), list(range(classes)) or [None]):
            self.problem(f"{where}: the {item.family} family cannot start from a trained model")
            return
        self.report.checked.append(
            f"{where}: its checkpoint matches its sha256 and loads into a {item.family} model"
        )

    def scenario(self, item: ScenarioFile) -> None:
        from aigc_run.scenario import read_toml, resolve

        where = f"scenario {item.name!r}"
        try:  # as a run reads it (its [sizes.N] blocks too), less the environment's settings
            scenario = resolve(read_toml(item.path) if item.path else item.content, environ={})
        except AigcError as e:
            self.problem(f"{where}: {e.message}")
            return
        if scenario.plugin not in (None, self.name):
            self.problem(f"{where} says plugin = {scenario.plugin!r}, not {self.name!r}")
        wanted: list[tuple[Kind[Any], str, list[str]]] = [
            (DATASETS, "data.source", [scenario.data.source]),
            (STEPS, "preprocess.steps", scenario.preprocess.steps),
            (MODEL_FAMILIES, "model.family", [scenario.model.family]),
            (FILTERS, "filters", list(scenario.filters)),
            (WRITERS, "output.writer", [scenario.output.writer]),
            (METRICS, "evaluate.metrics", scenario.evaluate.metrics),
        ]
        unknown = []
        for kind, setting, names in wanted:
            builtin = set(self.engine.contributions(kind)) if self.engine else set()
            known = builtin | {i.name for i in self.found.get(kind.hook, [])}
            unknown += [f"{setting} {n!r}" for n in names if n not in known]
        if unknown:
            self.problem(
                f"{where} uses names neither this plugin nor aigc-run registers: "
                + ", ".join(unknown)
            )
        else:
            self.report.checked.append(f"{where}: valid, every name it uses exists")

    def lifecycle(self, hooks: list[str]) -> None:
        if not hooks:
            return
        output = self.scratch / "run"
        output.mkdir()
        checkpoint = output / "step-000001.safetensors"
        checkpoint.write_bytes(b"")
        run = RunInfo(0, "check", {}, output, "cpu")
        batch = FilteredBatch(
            0,
            [0, 1],
            ["a", "b"],
            {"f": [0.9, 0.1]},
            [True, False],
            ["", "f"],
            ["a/000000.png", "rejected/b/000001.png"],
        )
        arguments = {
            "run": run,
            "step": 1,
            "values": {"loss": 0.5},
            "checkpoint": str(checkpoint),
            "batch": batch,
            "status": "completed",
            "error": RuntimeError("a check failure"),
        }
        for hook in hooks:
            try:
                self.plugins.call_plugin(self.name, hook, **arguments)
            except Exception as e:
                self.problem(f"{hook} raised {describe(e)}")
                continue
            self.report.checked.append(f"{hook}: called with a throwaway run")

    # -- what the random batches look like -----------------------------------------------

    def channels(self) -> list[int]:
        found = sorted({s.channels for s in self.found.get(DATASETS.hook, [])})
        return found or [3]

    def class_names(self) -> list[str]:
        for source in self.found.get(DATASETS.hook, []):
            if source.classes:
                return list(source.classes)
        return ["a", "b"]


def check_installed(name: str, data: Path | str | None = None) -> PluginReport:
    """Check a plugin installed under the entry-point group, by its entry-point name.

    Loads only that plugin, so another broken plugin does not stop the check.
    """
    if name == BUILTIN:
        from aigc_run import builtin

        return check_plugin(builtin)
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if name not in found:
        raise PluginError(
            name,
            "load",
            "no plugin of that name is installed "
            f"(installed: {', '.join(sorted(found)) or 'none'})",
            "install it with pip install -e PATH, or see `aigc-run plugins`",
        )
    ep: EntryPoint = found[name]
    version = ep.dist.version if ep.dist else "unknown"
    report = PluginReport(name, version)
    problem = incompatibility(ep.dist) if ep.dist else ""
    if problem:
        report.problems.append(problem)
        return report
    requirement = engine_requirement(ep.dist) if ep.dist else None
    if requirement is None or not requirement.specifier:
        report.notes.append(
            "declares no supported aigc-run range: add aigc-run>=X,<Y to its dependencies"
        )
    else:
        report.notes.append(f"supports aigc-run{requirement.specifier} (this is {__version__})")
    try:
        module = ep.load()
    except Exception as e:
        report.problems.append(f"importing {ep.value} raised {describe(e)}")
        return report
    checked = check_plugin(module, name, data=data, version=version)
    checked.notes[:0] = report.notes
    return checked


def _first_items(source: DatasetSource, request: DataRequest) -> tuple[list[Any], str]:
    try:
        return list(itertools.islice(iter(source.load(request)), PROBE_ITEMS)), ""
    except AigcError as e:
        return [], f"{type(e).__name__}: {e.message}"
    except Exception as e:
        return [], describe(e)


def _sample_problem(item: object, source: DatasetSource) -> str:
    from PIL import Image

    if not isinstance(item, Sample):
        return f"is a {type(item).__name__}, not a Sample or Skipped"
    if not isinstance(item.image, Image.Image):
        return f"image is a {type(item.image).__name__}, not a PIL image"
    if min(item.image.size) < 1:
        return f"image has size {item.image.size}"
    if not isinstance(item.label, str):
        return f"label {item.label!r} is not a string"
    if source.classes and item.label and item.label not in source.classes:
        return f"label {item.label!r} is not among the source's classes"
    try:
        item.image.convert("L" if source.channels == 1 else "RGB")
    except Exception as e:
        return f"image of mode {item.image.mode} cannot be converted: {describe(e)}"
    return ""


def _random_pil(mode: str) -> Any:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    shape = (40, 48, 3) if mode == "RGB" else (40, 48)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def _random_batch(channels: int, class_names: list[str]) -> tuple[Any, FilterContext]:
    import torch

    from aigc_run.evaluation.classifier import DomainClassifier
    from aigc_run.settings import Settings

    generator = torch.Generator().manual_seed(0)
    images = torch.rand(BATCH, channels, SIZE, SIZE, generator=generator)
    classes = len(class_names)
    reference = torch.rand(2 * BATCH, channels, SIZE, SIZE, generator=generator)
    reference_labels = torch.arange(2 * BATCH) % classes
    context = FilterContext(
        labels=torch.arange(BATCH) % classes,
        reference=reference,
        reference_labels=reference_labels,
        class_names=class_names,
        classifier=DomainClassifier(reference, reference_labels, classes, Settings().cache_dir),
    )
    return images, context


def _finite_number(value: Any) -> bool:
    """A loss as train_step may return it: a float, or a 0-dim tensor (read without a sync
    on a GPU until the engine logs it)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.dim() == 0 and bool(torch.isfinite(value))
    return isinstance(value, int | float) and math.isfinite(value)


def _random_evaluation(shape: tuple[int, ...], folder: Path) -> Any:
    """An EvaluationContext over random images in two classes, with cheap features (4 x 4
    thumbnails): enough to see a metric run and return numbers, not to judge them."""
    import torch

    from aigc_run.contract.components import EvaluationContext

    n = 32
    generator = torch.Generator().manual_seed(0)
    images = {
        name: torch.randint(0, 256, (n, *shape[1:]), dtype=torch.uint8, generator=generator)
        for name in ("reference", "held_out", "generated")
    }
    labels = torch.arange(n) % 2

    def features(space: str, name: str) -> torch.Tensor:
        thumbnails = torch.nn.functional.adaptive_avg_pool2d(images[name].float() / 255, 4)
        return thumbnails.flatten(1)

    return EvaluationContext(
        reference=images["reference"],
        reference_labels=labels,
        held_out=images["held_out"],
        held_out_labels=labels,
        generated=images["generated"],
        generated_labels=labels,
        class_names=["a", "b"],
        conditional=True,
        feature_spaces=["domain"],
        features=features,
        output_dir=folder,
        device="cpu",
        seed=0,
    )
