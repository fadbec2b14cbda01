"""benchmarks/gpu_check.py runs end to end with --device cpu --quick (CI checks the script;
its figures mean something only on a GPU)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_check_runs_every_part_on_the_cpu(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    assert spec and spec.loader
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    out = tmp_path / "gpu_check.json"
    summary = check.main(["--device", "cpu", "--quick", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(summary, default=str))
    failed = {name: part for name, part in summary["parts"].items() if not part["ok"]}
    assert not failed, json.dumps(failed, indent=1, default=str)[:3000]
    assert set(summary["parts"]) == set(check.PARTS)
    smoke = summary["parts"]["smoke"]["steps"]
    assert smoke["killed"]["expected"] and smoke["regenerate"]["max_grey_levels_apart"] == 0
    (size,) = summary["parts"]["train"]["sizes"].values()
    assert all(rate > 0 for p in ("bf16", "fp32") for rate in size["steps_per_s"][p].values())
    assert summary["parts"]["sampling"]["rows"][0]["generator_engine"] > 0
    assert summary["parts"]["end_to_end"]["sampled_images_per_s"] > 0
