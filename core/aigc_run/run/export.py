"""``aigc-run export RUN --out DIR``: a trained run as a folder that draws and filters
images on a machine with no registry and no training data (``aigc_run.load(DIR)``).

    DIR/aigc-export.json      what rebuilds the network (family, ModelSpec), the scenario,
                              class names and counts, the filters' thresholds, the
                              evaluation figures and the sha256 of every other file
    DIR/model.safetensors     the model's tensors but its optimiser state (G, the EMA
                              generator, D for the realness filter)
    DIR/reference.safetensors the training images the filters compare against, uint8, and
                              their labels (left out with --no-reference)
    DIR/features/domain-*     the domain network the class-consistency checks ask
    DIR/README.md             the model card

Loading checks every file against its sha256 before it reads a byte of weights, so an
altered or damaged folder is refused; weights that do not fit the network the config
builds are refused by the strict load.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aigc_run import __version__, checkpoints
from aigc_run.contract.components import ModelSpec
from aigc_run.contract.errors import AigcError, ConfigError
from aigc_run.contract.kinds import MODEL_FAMILIES
from aigc_run.plugins import Plugins
from aigc_run.registry import Registry
from aigc_run.run import setup
from aigc_run.run.more_samples import Trained, load_trained
from aigc_run.scenario import recorded
from aigc_run.settings import Settings

CONFIG, CARD = "aigc-export.json", "README.md"
MODEL, REFERENCE = "model.safetensors", "reference.safetensors"
FORMAT = 1  # bump when the folder's layout changes


def export(
    run_id: int,
    folder: Path,
    plugins: Plugins,
    settings: Settings,
    step: int | None = None,
    reference: bool = True,
) -> Path:
    """Write run ``run_id`` at checkpoint ``step`` (default: the last) to ``folder``, which
    must be new or empty. The folder appears whole or not at all: it is written beside
    and renamed into place."""
    import torch

    from aigc_run.evaluation import describe
    from aigc_run.evaluation.features import domain_features, network_path

    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ConfigError(f"{folder} exists and is not an empty folder", "choose a new --out")
    trained = load_trained(run_id, step, plugins, settings, "cpu")
    registry = Registry(settings.registry_url)
    try:
        run = registry.get_run(run_id)
    finally:
        registry.close()
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        state = trained.model.state_dict()
        weights = {k: v for k, v in state.items() if not k.startswith("optimizer")}
        files = {MODEL: checkpoints.save(work / MODEL, weights, {"format": str(FORMAT)})}
        context = trained.reference
        if reference:
            pixels = context.reference.mul(255).round().to(torch.uint8)
            labels = context.reference_labels
            tensors = {"images": pixels, "labels": labels}
            files[REFERENCE] = checkpoints.save(work / REFERENCE, tensors, {})
            if len(trained.class_names) >= 2:  # the class-consistency checks ask it
                classes = len(trained.class_names)
                domain_features(pixels, labels, classes, settings.cache_dir)
                cached = network_path(settings.cache_dir, pixels, labels, classes)
                name = cached.relative_to(settings.cache_dir).as_posix()
                (work / name).parent.mkdir(parents=True)
                shutil.copyfile(cached, work / name)
                files[name] = checkpoints.sha256_of(work / name)
        figures = {k: v for k, v in run.evaluations.items() if not k.startswith("threshold:")}
        config = {
            "format": FORMAT,
            "aigc_run": __version__,
            "run": {
                "id": run_id,
                "scenario": run.scenario,
                "step": trained.step,
                "device": run.device,
                "started_at": run.started_at.isoformat(),
                "duration_s": run.duration_s,
                "plugins": dict(run.plugins),
                "dataset": run.dataset,
                "started_from": run.started_from(),
            },
            "family": trained.scenario.model.family,
            "spec": {k: v for k, v in vars(trained.spec).items() if k != "device"},
            "scenario": run.config,
            "class_names": trained.class_names,
            "class_counts": trained.class_counts,
            "thresholds": trained.thresholds,
            "evaluation": figures,
            "reference_images": len(context.reference) if reference else 0,
            "files": files,
        }
        (work / CONFIG).write_text(json.dumps(config, indent=1, default=str) + "\n")
        (work / CARD).write_text(model_card(config, describe(figures)))
        if folder.exists():
            folder.rmdir()  # empty, checked above
        os.replace(work, folder)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return folder


def load_export(folder: Path, plugins: Plugins, device: str | None = None) -> Trained:
    """The model an export folder holds, on ``device`` (default: CUDA when there is a GPU,
    else the CPU), every file checked against its sha256 first."""
    import torch

    config = read_config(folder)
    for name, sha256 in config["files"].items():
        if problem := checkpoints.problem_with(folder / name, sha256):
            raise AigcError(
                f"{folder / name} {problem} (the sha256s are in {CONFIG})",
                "export the run again, or restore the folder from a copy",
            )
    scenario = recorded(config["scenario"])
    family = setup.lookup(plugins, MODEL_FAMILIES, config["family"], f"{CONFIG} family")
    device = setup.pick_device(device or "auto")
    spec = ModelSpec(**config["spec"], device=device)
    model = setup.create_model(family, spec)
    checkpoints.restore(model, folder / MODEL)
    reference = None
    if REFERENCE in config["files"]:
        tensors = checkpoints.load(folder / REFERENCE)
        images = tensors["images"].to(device).float().div_(255)
        labels = tensors["labels"].to(device, torch.int64)
        classes = config["class_names"]
        reference = setup.filter_context(images, labels, classes, folder, model)
    return Trained(
        run_id=config["run"]["id"],
        scenario=scenario,
        model=model,
        step=config["run"]["step"],
        thresholds=config["thresholds"],
        output_dir=folder,
        device=device,
        class_names=config["class_names"],
        reference=reference,
        class_counts=config["class_counts"],
        spec=spec,
    )


def read_config(folder: Path) -> dict[str, Any]:
    """``folder``'s aigc-export.json, or an error that says what the folder is not."""
    path = folder / CONFIG
    if not path.is_file():
        raise ConfigError(
            f"{folder} is not an aigc-run export: it has no {CONFIG}",
            "make one with `aigc-run export RUN_ID --out FOLDER`",
        )
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AigcError(f"{path} is not valid JSON: {e}", "export the run again") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else None
        raise AigcError(
            f"{path} is export format {found!r}; this aigc-run {__version__} reads {FORMAT}",
            "load it with the aigc-run version that wrote it, or export the run again",
        )
    return config


def model_card(config: Mapping[str, Any], figures: list[str]) -> str:
    """The folder's README.md: what the model is, what it was trained on and for how long,
    how well it did, and what it is for."""
    run, spec = config["run"], config["spec"]
    data = run.get("dataset") or {}
    classes = ", ".join(
        f"{name} ({count})"
        for name, count in zip(config["class_names"], config["class_counts"], strict=False)
    )
    seconds = run["duration_s"]
    took = (
        ""
        if seconds is None
        else f" in {seconds:.0f} s"
        if seconds < 120
        else f" in {seconds / 60:.0f} min"
    )
    thresholds = [f"- {name}: {value:.4g}" for name, value in config["thresholds"].items()]
    stored = config["reference_images"]
    lines = [
        f"# {run['scenario']}: a {config['family']} model, {spec['image_size']} px",
        "",
        "**Every image this model draws is synthetic.** It shows no real product, person "
        "or patient; label it as generated wherever it is used.",
        "",
        "## Data",
        f"- Scenario `{run['scenario']}`, source `{config['scenario']['data'].get('source')}`",
        f"- {data.get('images', '?')} images ({sum(config['class_counts'])} trained on, the "
        f"rest held out for evaluation), {spec['channels']} channel(s), "
        f"{spec['image_size']} x {spec['image_size']} px",
        f"- Classes, with their training images: {classes or 'none (unlabelled)'}",
        "",
        "## Training",
        f"- Run {run['id']}, step {run['step']}{took}, on {run['device']}, "
        f"started {run['started_at']}",
        f"- Started from: {run.get('started_from') or 'random weights'}",
        f"- Plugins: {', '.join(f'{k} {v}' for k, v in run['plugins'].items())}",
        f"- Exported by aigc-run {config['aigc_run']}",
        "",
        "## Evaluation (real vs real: the same figure between two halves of the real data)",
        *(f"- {line}" for line in figures or ["not evaluated"]),
        "",
        "## Quality filters and the thresholds the run calibrated",
        *(thresholds or ["- none"]),
        "",
        "## Intended use",
        "Drafts, prototypes, data augmentation and research in the domain of the training "
        "data. Not for decisions about real people, patients or products, and not as "
        "evidence of anything real. Look at what it draws before you use it.",
        "",
        "## Files",
        f"- `{MODEL}`: the network's weights; `{CONFIG}`: what rebuilds it, and the sha256 "
        "of every file (a changed file is refused on loading)",
        f"- `{REFERENCE}`: {stored} of the real training images, which the filters compare "
        "against: share this folder only where the training data may go"
        if stored
        else "- No training images (exported with --no-reference): draws are not filtered",
        "",
        "```python",
        "import aigc_run",
        "model = aigc_run.load('path/to/this/folder')",
        "batch = model.generate(16, seed=0)  # batch.images: 16 x H x W x C uint8",
        "```",
        "",
    ]
    return "\n".join(lines)
