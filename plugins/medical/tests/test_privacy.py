"""Every completed medical run carries a privacy audit beside its samples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

AIGC_RUN = str(Path(sys.executable).parent / "aigc-run")


def test_a_medical_run_writes_its_privacy_audit(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGC_")}
    env["AIGC_HOME"] = str(tmp_path / "home")
    out = tmp_path / "out"
    sets = ["train.steps=4", "train.batch_size=4", "model.width=8", "sample.count=8",
            "data.image_size=16", "data.options.demo_count=120", "filters.memorisation=0.5",
            "evaluate.metrics=['memorisation']", "evaluate.samples=40",
            f"output.folder={out}"]  # fmt: skip
    args = [AIGC_RUN, "scenario", "medical", "--quiet"]
    for s in sets:
        args += ["--set", s]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"privacy audit: {out / 'privacy_audit.md'}" in done.stdout

    audit = json.loads((out / "privacy_audit.json").read_text())
    assert 0 <= audit["memorisation_rate"] <= 1
    assert 0 <= audit["memorisation_rate_of_held_out_real"] <= 1
    assert audit["filter_setting"] == 0.5
    rejections = audit["filter_rejections"]
    # a 4-step generator's blobs are far from every scan: a 0.5 threshold rejects some
    assert rejections["samples"] >= 8 and rejections["rejected"] >= 1
    assert audit["closest_pairs"] and audit["evaluation_threshold"] > 0
    for pair in audit["closest_pairs"]:
        assert (out / pair["sample"]).is_file() and (out / pair["nearest_train"]).is_file()
        assert pair["threshold"] == audit["evaluation_threshold"]
    text = (out / "privacy_audit.md").read_text()
    assert "memorisation rate of the samples" in text
    assert f"![]({audit['closest_pairs'][0]['sample']})" in text


def test_a_run_that_was_not_evaluated_gets_no_audit(tmp_path: Path) -> None:
    from aigc_medical.privacy import write_audit
    from aigc_run import RunInfo

    run = RunInfo(1, "medical", {"plugin": "medical"}, tmp_path, "cpu")
    assert write_audit(run) is None  # not evaluated: nothing to audit
