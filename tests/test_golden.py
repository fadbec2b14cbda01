"""A run draws exactly what it drew before: the golden scenarios against their recording.

``tests/golden/record.py`` ran each scenario in ``tests/golden/`` and kept its final
checkpoint, manifest and the sha256 of every image's pixels. Here the same scenarios run
again, the same way (the CLI in a fresh process, one thread, on the CPU), and everything
must match bit for bit: a refactor that changes what a run computes fails this test.

Bit for bit holds only on a machine of the kind that recorded (``golden/machine.json``: the
CPU and torch's kernels round differently elsewhere; on a second CPU the weights differed by
at most 0.003 after 30 steps). On another machine the weights and the filters' scores must
agree to within 1% (or 0.01), and every sample the same decision; the pixel hashes are not compared.
"""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
import torch

GOLDEN = Path(__file__).parent / "golden"
SCENARIOS = sorted(p.stem for p in GOLDEN.glob("*.toml"))

spec = importlib.util.spec_from_file_location("golden_record", GOLDEN / "record.py")
assert spec is not None and spec.loader is not None
record = importlib.util.module_from_spec(spec)
spec.loader.exec_module(record)


def rows(manifest: Path) -> list[dict[str, str]]:
    with manifest.open(newline="") as f:
        return list(csv.DictReader(f))


def outcome(row: dict[str, str]) -> tuple[object, ...]:
    """What a manifest row says about its sample: which image, asked for which class,
    whether it was kept, and every filter's score."""
    scores = {k: float(v) for k, v in row.items() if k.startswith("score:")}
    return row["file"], row["class"], row["seed"], row["index"], row["accepted"], scores


def rejected_by(row: dict[str, str]) -> list[str]:
    """The filters that rejected the sample: the manifest's rejected_by column, or for a
    manifest recorded before that column existed, its reason text ("name score < t; ...")."""
    if "rejected_by" in row:
        return [name for name in row["rejected_by"].split(";") if name]
    return [part.split()[0] for part in row["reason"].split("; ") if part]


SAME_MACHINE = record.machine() == json.loads((GOLDEN / "machine.json").read_text())
# Another CPU's rounding over a few dozen steps. The absolute part is for parameters that
# barely train, e.g. a bias that batch norm cancels: its gradient is rounding noise.
RTOL, ATOL = 1e-2, 1e-2


def close(got: float, want: float) -> bool:
    return abs(got - want) <= ATOL + RTOL * abs(want)


def decision(row: dict[str, str]) -> tuple[str, ...]:
    return row["file"], row["class"], row["seed"], row["index"], row["accepted"]


@pytest.mark.slow
@pytest.mark.parametrize("name", SCENARIOS)
def test_a_run_draws_what_it_drew_before(name: str, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    output = tmp_path / "run"
    record.run(GOLDEN / f"{name}.toml", tmp_path / "home", output)
    recorded = GOLDEN / name

    final = sorted((output / "checkpoints").glob("*.safetensors"))[-1]
    got, want = load_file(final), load_file(recorded / "checkpoint.safetensors")
    assert sorted(got) == sorted(want)
    if SAME_MACHINE:
        changed = [k for k in want if not got[k].equal(want[k])]
    else:
        changed = [
            k for k in want if not torch.allclose(got[k].double(), want[k].double(), RTOL, ATOL)
        ]
    assert not changed, f"tensors differ from the recording: {changed[:5]}"

    got_rows, want_rows = rows(output / "manifest.csv"), rows(recorded / "manifest.csv")
    assert [rejected_by(r) for r in got_rows] == [rejected_by(r) for r in want_rows]
    assert any(r["accepted"] == "0" for r in want_rows)  # the filters had something to do
    if SAME_MACHINE:
        assert [outcome(r) for r in got_rows] == [outcome(r) for r in want_rows]
        assert record.pixels(output) == json.loads((recorded / "pixels.json").read_text())
        return
    assert [decision(r) for r in got_rows] == [decision(r) for r in want_rows]
    for got_row, want_row in zip(got_rows, want_rows, strict=True):
        scores = {k: (got_row[k], v) for k, v in want_row.items() if k.startswith("score:")}
        assert all(close(float(a), float(b)) for a, b in scores.values()), scores
