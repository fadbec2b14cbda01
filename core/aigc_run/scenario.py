"""Scenario recipes: TOML validated by pydantic, with ``--set`` and ``AIGC_`` overrides.

Precedence, lowest first: the model defaults below, the scenario file, the file's
``[sizes.N]`` block for the image size the run trains at, its ``[fine_tune]`` block when
the run starts from a trained model, ``AIGC_<SECTION>__<KEY>`` environment variables, then
``--set section.key=value`` on the command line.

A ``[sizes.N]`` block holds the settings that differ at N pixels (``[sizes.64.model]
width = 32``): one scenario file carries a recipe per size, and ``--set data.image_size=64``
picks the block up. A ``[fine_tune]`` block holds those that differ when the run starts
from a trained model (``train.init_from``, ``--init-from``): ``[fine_tune.train] steps =
750``. A setting given by ``--set`` or the environment beats either block's.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aigc_run.contract.errors import ConfigError

SECTIONS = ("data", "preprocess", "model", "train", "sample", "filters", "evaluate", "output")


NewClassFrom = Literal["mean", "nearest"]  # train.new_class_from: where a new class starts


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    source: str = Field(description="a dataset source name (aigc-run plugins shows them)")
    path: str | None = Field(None, description="your data; unset = the source's built-in default")
    options: dict[str, Any] = Field(default_factory=dict)
    image_size: Annotated[int, Field(ge=8, le=512)] = 32
    holdout: Annotated[float, Field(ge=0.0, le=0.5)] = 0.1  # kept out of training, for calibration
    max_images: Annotated[int, Field(ge=1)] | None = None


class PreprocessConfig(_Section):
    steps: list[str] = Field(default_factory=list)


class ModelConfig(_Section):
    """[model]: the keys every family takes, and each family's own keys, in a table named
    after the family (``[model.gan]``, ``[model.vae]``: only the chosen family's is read,
    so ``--set model.family=vae`` switches family in one setting) or flat beside the shared
    keys (then they are the chosen family's, and beat its table: ``--set model.loss=hinge``
    changes what ``[model.gan]`` says)."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)  # family-specific keys
    family: str = "gan"
    conditional: bool = True
    latent_dim: Annotated[int, Field(ge=2, le=1024)] = 64
    width: Annotated[int, Field(ge=8, le=1024)] = 32

    def for_family(self) -> dict[str, Any]:
        """The settings the chosen family is built with: its own table, with the shared
        and flat keys laid over it; the other families' tables left out."""
        values = self.model_dump()
        tables = {k: v for k, v in values.items() if isinstance(v, dict)}
        return tables.get(self.family, {}) | {k: v for k, v in values.items() if k not in tables}


class TrainConfig(_Section):
    steps: Annotated[int, Field(ge=1)] = 1300
    batch_size: Annotated[int, Field(ge=2, le=4096)] = 32
    lr: Annotated[float, Field(gt=0, le=1)] = 4e-4
    lr_d: Annotated[float, Field(gt=0, le=1)] | None = None  # GAN discriminator; None = lr
    beta1: Annotated[float, Field(ge=0, lt=1)] = 0.5
    beta2: Annotated[float, Field(ge=0, lt=1)] = 0.999
    log_every: Annotated[int, Field(ge=1)] = 50
    checkpoint_every: Annotated[int, Field(ge=1)] = 500
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_minutes: Annotated[float, Field(gt=0)] | None = None  # stop early, keeping what was learned
    # how training batches are drawn: uniformly ("none"), or weighted so rare classes are
    # seen as often as common ones ("classes") or halfway there ("sqrt"); see training.py
    balance: Literal["none", "sqrt", "classes"] = "none"
    # A logged value (loss) beyond this, or NaN/inf, stops the run as diverged; None = no bound.
    max_loss: Annotated[float, Field(gt=0)] | None = 1e6
    # "auto" = bfloat16 autocast and channels_last on CUDA, float32 on the CPU.
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    # CPU threads: "auto" takes the cores this process may use that other work leaves
    # free, when the command starts (threads.py); AIGC_THREADS or OMP_NUM_THREADS decide
    # instead when set.
    threads: Annotated[int, Field(ge=1, le=1024)] | Literal["auto"] = "auto"
    # Start from a trained model instead of random weights: a run id (see aigc-run runs) or
    # a plugin's base model, PLUGIN:NAME (aigc-run plugins lists them). Its networks, not
    # its optimiser or step; classes are matched by name (run/transfer.py).
    init_from: str | None = None
    # Keep the discriminator's first N blocks (from the image side) as they start: FreezeD
    # (Mo et al. 2020), for fine-tuning from init_from on a few images. gan family only.
    freeze_d: Annotated[int, Field(ge=0, le=8)] = 0
    # The generator's coarse layers (its 4x4 stem and the blocks up to a quarter of the
    # image size: layout and shape) learn at this share of lr, the fine ones at lr itself;
    # below 1 a fine-tuned generator keeps its trained shapes longer. gan family only.
    lr_g_coarse: Annotated[float, Field(gt=0, le=1)] = 1.0
    # With init_from, where a class the trained model lacks starts: "mean", the mean of the
    # trained classes' rows; "nearest", the trained class its photos look most like to the
    # trained model's own critic (run/transfer.py).
    new_class_from: NewClassFrom = "mean"

    @field_validator("init_from", mode="before")
    @classmethod
    def _run_id_as_text(cls, value: Any) -> Any:
        # --set train.init_from=3 and init_from = 3 in TOML both read as a number
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class SampleConfig(_Section):
    count: Annotated[int, Field(ge=1, le=10_000_000)] = 64
    # "auto": 256 on a CPU; on a GPU the largest power of two that fits in half its free memory
    batch_size: Annotated[int, Field(ge=1, le=65536)] | Literal["auto"] = "auto"
    seed: int = 1234
    truncation: Annotated[float, Field(gt=0, le=10)] | None = None  # redraw noise beyond +-t
    # The truncation trick's psi: every sample's noise is scaled by it, pulled towards its
    # mean (0): fewer odd samples, less variety. 1 = off (aigc-run sample --truncation).
    psi: Annotated[float, Field(gt=0, le=1)] = 1.0
    # How each sample's noise follows from (seed, index): "counter" hashes them on the
    # device; "generator" (one CPU torch.Generator per index) is how runs recorded before
    # this key existed drew theirs, kept so that they regenerate exactly.
    noise: Literal["counter", "generator"] = "counter"
    # torch.compile the generator: on 2 CPU cores it took 26 s, then ran ~4x faster, so it
    # pays off from some 30,000 samples (benchmarks/sample_throughput.py --compile)
    compile: bool = False
    max_tries: Annotated[int, Field(ge=1, le=100)] = 4  # oversampling cap, times count
    filter_timeout: Annotated[float, Field(gt=0)] = 300  # seconds one filter may take per batch
    on_filter_error: Literal["fail", "skip"] = "fail"  # a filter that raises, hangs or returns junk


FilterThreshold = float | Literal["auto", "off"]


#: The engine's own metrics, run at the end of every scenario unless evaluate.metrics says
#: otherwise (``[]`` switches evaluation off). See docs/evaluation.md.
DEFAULT_METRICS = (
    "fid",
    "kid",
    "precision-recall",
    "density-coverage",
    "class-fid",
    "memorisation",
    "tstr",
)

FeatureSpace = Literal["domain", "inception"]
DEFAULT_FEATURES: tuple[FeatureSpace, ...] = ("domain",)


class EvaluateConfig(_Section):
    metrics: list[str] = Field(default_factory=lambda: list(DEFAULT_METRICS))
    # Feature spaces the feature metrics are computed in: "domain" (a small network trained
    # on the scenario's training images) and/or "inception" (the standard FID network).
    features: list[FeatureSpace] = Field(default_factory=lambda: list(DEFAULT_FEATURES))
    samples: Annotated[int, Field(ge=2, le=1_000_000)] = 1000  # capped by the held-out count
    reference: Annotated[int, Field(ge=2, le=10_000_000)] = 10_000  # training images compared
    seed: int = 2024

    @field_validator("features", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class OutputConfig(_Section):
    writer: str = "png"
    folder: str | None = None  # unset = $AIGC_HOME/runs/<run id>
    keep_rejected: bool = True
    # worker processes that encode and write files; "auto": all cores when count >= 1024
    write_processes: Annotated[int, Field(ge=0, le=64)] | Literal["auto"] = "auto"


class Scenario(BaseModel):
    """A validated scenario: what to load, how to train, what to keep and where to write."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: str
    description: str = ""
    plugin: str | None = None  # the plugin the scenario needs; named in the error when absent
    data: DataConfig
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    filters: dict[str, FilterThreshold] = Field(default_factory=dict)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"scenario file not found: {path}", "check the path") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}", "fix the file's syntax") from None


def parse_value(text: str) -> Any:
    """Read a ``--set`` value as TOML (numbers, booleans, lists, quoted strings), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _assign(tree: dict[str, Any], dotted: str, value: Any, origin: str) -> None:
    keys = dotted.split(".")
    if len(keys) < 2 or not all(keys):
        raise ConfigError(
            f"{origin}: {dotted!r} is not a setting path",
            "use section.key=value, e.g. --set train.steps=2000",
        )
    if keys[0] not in SECTIONS:
        raise ConfigError(
            f"{origin}: unknown section {keys[0]!r} in {dotted!r}",
            f"sections are: {', '.join(SECTIONS)}",
        )
    node = tree
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{origin}: {dotted!r} goes inside a value that is not a table")
        node = child
    node[keys[-1]] = value


def env_overrides(environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """``AIGC_TRAIN__STEPS=100`` -> ``("train.steps", "100")``; other AIGC_ names are settings."""
    environ = os.environ if environ is None else environ
    found = []
    for name, value in sorted(environ.items()):
        if not name.startswith("AIGC_") or "__" not in name:
            continue
        dotted = name[len("AIGC_") :].lower().replace("__", ".")
        if dotted.split(".")[0] in SECTIONS:
            found.append((dotted, value))
    return found


def resolve(
    content: Mapping[str, Any],
    overrides: Sequence[str] = (),
    data_path: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Scenario:
    """Merge a scenario's content, its block for the image size, env and ``--set``
    overrides, and validate the result."""
    tree: dict[str, Any] = _deep_copy(content)
    sizes = _size_blocks(tree.pop("sizes", {}))
    fine_tune = _fine_tune_block(tree.pop("fine_tune", {}))
    given = []  # settings named by the environment or --set: the size block leaves them be
    for dotted, text in env_overrides(environ):
        _assign(tree, dotted, parse_value(text), f"environment AIGC_{dotted.upper()}")
        given.append(dotted)
    for item in overrides:
        dotted, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r} has no '='", "use --set section.key=value")
        _assign(tree, dotted.strip(), parse_value(text.strip()), f"--set {item}")
        given.append(dotted.strip())
    if data_path is not None:
        tree.setdefault("data", {})["path"] = data_path
    data = tree.get("data")  # not yet validated: may be anything
    size = DataConfig.model_fields["image_size"].default
    if isinstance(data, Mapping):
        size = data.get("image_size", size)
    chosen = tree
    for size_of_block, block in sizes.items():  # every block is checked, not only the one in use
        merged = _laid_over(tree, block, given, f"[sizes.{size_of_block}]")
        if size_of_block == size:
            chosen = merged
    if fine_tune:  # checked whether or not this run starts from a trained model
        merged = _laid_over(chosen, fine_tune, given, "[fine_tune]")
        train = chosen.get("train")
        if isinstance(train, Mapping) and train.get("init_from") is not None:
            chosen = merged
    return validate(chosen)


def _laid_over(
    tree: dict[str, Any], block: list[tuple[str, Any]], given: list[str], name: str
) -> dict[str, Any]:
    """``tree`` with ``block``'s settings, except those ``given`` by --set or the environment;
    a setting the block makes invalid is an error naming the block."""
    merged = _deep_copy(tree)
    for dotted, value in block:
        if not any(dotted == g or dotted.startswith(g + ".") for g in given):
            _assign(merged, dotted, value, name)
    try:
        Scenario.model_validate(merged)
    except ValidationError as e:
        raise ConfigError(f"{name}: " + describe_validation_error(e), _hint(e)) from None
    return merged


def _fine_tune_block(block: Any) -> list[tuple[str, Any]]:
    """``{"train": {"steps": 750}}`` -> ``[("train.steps", 750)]``."""
    if not isinstance(block, Mapping):
        raise ConfigError("[fine_tune] must be a table of sections", "write e.g. [fine_tune.train]")
    settings = _settings(block, "[fine_tune]")
    if any(dotted == "train.init_from" for dotted, _ in settings):
        raise ConfigError(
            "[fine_tune]: train.init_from cannot be set by the block that applies when it is set",
            "give the trained model with --init-from, or set train.init_from in [train]",
        )
    return settings


def _size_blocks(sizes: Any) -> dict[int, list[tuple[str, Any]]]:
    """``{"64": {"model": {"width": 32}}}`` -> ``{64: [("model.width", 32)]}``."""
    if not isinstance(sizes, Mapping):
        raise ConfigError("[sizes] must be a table of sizes", "write e.g. [sizes.64.model]")
    blocks = {}
    for key, block in sizes.items():
        if not str(key).isdigit() or not isinstance(block, Mapping):
            raise ConfigError(
                f"[sizes.{key}]: a size block is named by the image size in pixels",
                "write e.g. [sizes.64.model] with the settings that differ at 64 px",
            )
        blocks[int(key)] = _settings(block, f"[sizes.{key}]")
    return blocks


def _settings(block: Mapping[str, Any], name: str) -> list[tuple[str, Any]]:
    """A block's settings as (dotted key, value); a ConfigError naming ``name`` when one
    is in an unknown section."""
    settings = list(_leaves(block))
    for dotted, _ in settings:
        _assign({}, dotted, None, name)
    return settings


def _leaves(tree: Mapping[str, Any], prefix: str = "") -> Any:
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def recorded(config: Mapping[str, Any]) -> Scenario:
    """A run's scenario as the registry recorded it. Keys added since then take the value
    that gives the behaviour the run had, so that it resumes, samples and evaluates alike."""
    sample = dict(config.get("sample", {}))
    sample.setdefault("noise", "generator")  # recorded before sample.noise existed
    return validate({**config, "sample": sample})


def validate(tree: Mapping[str, Any]) -> Scenario:
    try:
        return Scenario.model_validate(tree)
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e), _hint(e)) from None


def describe_validation_error(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        if problem["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown setting")
        else:
            given = problem.get("input")
            shown = "" if isinstance(given, dict) else f" (got {given!r})"
            lines.append(f"{where}: {problem['msg']}{shown}")
    return "invalid scenario setting: " + "; ".join(lines)


def _hint(error: ValidationError) -> str:
    if any(p["type"] == "extra_forbidden" for p in error.errors()):
        return "check the spelling; the settings of each section are listed in the README"
    return "change the value to one in the allowed range"


def _deep_copy(content: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in content.items()}
