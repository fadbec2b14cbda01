"""The privacy audit of a medical run: ``privacy_audit.md`` and ``.json`` in its folder.

A research group sharing synthetic scans must show that they are not copies of patients'
scans. The audit gathers, in one place: the memorisation rate of the evaluation (samples
closer to a training scan than real unseen scans come) beside the rate for held-out real
scans, the thresholds used, how many samples the memorisation filter rejected, and the
closest sample/training pairs, as images side by side.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from aigc_run import RunInfo


def write_audit(run: RunInfo) -> Path | None:
    """Write the audit once a run has completed; None when it was not evaluated."""
    folder = Path(run.output_dir)
    evaluation = folder / "evaluation" / "evaluation.json"
    if not evaluation.is_file():
        return None
    figures = json.loads(evaluation.read_text())["figures"]
    pairs_file = folder / "evaluation" / "memorisation.json"
    pairs = json.loads(pairs_file.read_text()) if pairs_file.is_file() else []
    audit: dict[str, Any] = {
        "run": run.id,
        "memorisation_rate": figures.get("memorisation:domain"),
        "memorisation_rate_of_held_out_real": figures.get("memorisation:domain:floor"),
        "evaluation_threshold": pairs[0]["threshold"] if pairs else None,
        "filter_setting": run.config.get("filters", {}).get("memorisation", "off"),
        "filter_rejections": _filter_rejections(folder / "manifest.csv"),
        "closest_pairs": pairs,
    }
    (folder / "privacy_audit.json").write_text(json.dumps(audit, indent=1))
    path = folder / "privacy_audit.md"
    path.write_text(_markdown(audit))
    return path


def _filter_rejections(manifest: Path) -> dict[str, int]:
    if not manifest.is_file():
        return {"samples": 0, "rejected": 0}
    with manifest.open(newline="") as f:
        rows = list(csv.DictReader(f))
    rejected = sum("memorisation" in (r.get("rejected_by") or "").split(";") for r in rows)
    return {"samples": len(rows), "rejected": rejected}


def _markdown(audit: dict[str, Any]) -> str:
    def share(value: float | None) -> str:
        return "not computed" if value is None else f"{value:.2%}"

    rejections = audit["filter_rejections"]
    lines = [
        f"# Privacy audit, run {audit['run']}",
        "",
        "Synthetic scans flagged as possible copies of a training scan: nearest training",
        "scan closer (in the domain feature space) than the evaluation threshold, set from",
        "how close unseen real scans come (docs/evaluation.md).",
        "",
        f"- memorisation rate of the samples: {share(audit['memorisation_rate'])}",
        f"- the same check on held-out real scans: "
        f"{share(audit['memorisation_rate_of_held_out_real'])}",
        f"- evaluation threshold (feature distance): {audit['evaluation_threshold']}",
        f"- memorisation filter (`filters.memorisation`): {audit['filter_setting']}; it "
        f"rejected {rejections['rejected']} of {rejections['samples']} samples, which were "
        "kept apart under rejected/ and not released with the samples",
        "",
        "## Closest sample / training pairs",
        "",
        "| sample | nearest training scan | distance | threshold |",
        "|---|---|---|---|",
    ]
    for pair in audit["closest_pairs"]:
        lines.append(
            f"| ![]({pair['sample']}) | ![]({pair['nearest_train']}) | "
            f"{pair['distance']:.4g} | {pair['threshold']:.4g} |"
        )
    if not audit["closest_pairs"]:
        lines.append("| (memorisation was not evaluated) | | | |")
    return "\n".join(lines) + "\n"
