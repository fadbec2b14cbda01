"""Training speed on a busy CPU: the thread policy against fixed thread counts.

    python benchmarks/cpu_contention.py [--rounds 5] [--steps 150] [--arms auto,1,2]

Each measurement is a fresh process that builds the shipped ecommerce recipe's model
(32 px) and times ``--steps`` training steps after a few to warm up, on random images. Its
threads come from the arm: ``auto`` (``threads.choose("auto")``, what every command does,
measured when the process starts) or a fixed number. Each arm is timed on the quiet
machine and beside one competing process that spins on a core; rounds alternate the arms
and the two conditions, so a drifting machine moves them alike. The record gives each
arm's median steps/s, quiet and busy, and the share of its quiet speed it keeps when busy
(a fair share of 2 cores with one of them taken is 50%).

Writes benchmarks/results/cpu_contention.json (``--results`` elsewhere).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from records import RESULTS, commit, write_record  # noqa: E402

WARM_UP = 5

ONE_ARM = """
import json, sys, time
import numpy as np, torch
from aigc_run import threads
from aigc_run.contract.components import ModelSpec
from aigc_run.contract.kinds import MODEL_FAMILIES
from aigc_run.plugins import load_plugins
from aigc_run.scenario import read_toml, resolve

arm, steps, warm = sys.argv[1], int(sys.argv[2]), int(sys.argv[4])
threads.apply(threads.choose("auto" if arm == "auto" else int(arm), {}))
scenario = resolve(read_toml(__import__("pathlib").Path(sys.argv[3])), environ={})
torch.manual_seed(0)
spec = ModelSpec(3, 32, 6, True, scenario.model.for_family(), scenario.train.model_dump(), "cpu")
model = load_plugins(set()).contributions(MODEL_FAMILIES)["gan"].item.create(spec)
batch = scenario.train.batch_size
images = torch.rand(batch, 3, 32, 32) * 2 - 1
labels = torch.arange(batch) % 6
for step in range(steps + warm):
    if step == warm:
        started = time.perf_counter()
    model.train_step(images, labels)
seconds = time.perf_counter() - started
print(json.dumps({"threads": torch.get_num_threads(), "steps_per_s": steps / seconds}))
"""


def measure(arm: str, steps: int) -> dict[str, Any]:
    scenario = REPO / "scenarios" / "ecommerce.toml"
    done = subprocess.run(
        [sys.executable, "-c", ONE_ARM, arm, str(steps), str(scenario), str(WARM_UP)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--arms", default="auto,1,2")
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    arms = args.arms.split(",")
    measured_at = commit()
    runs: list[dict[str, Any]] = []
    for round_ in range(args.rounds):
        for condition in ("quiet", "busy") if round_ % 2 == 0 else ("busy", "quiet"):
            spin = None
            if condition == "busy":
                spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                time.sleep(1.0)  # running before the arm measures the load
            try:
                for arm in arms if round_ % 2 == 0 else arms[::-1]:
                    result = measure(arm, args.steps)
                    runs.append({"round": round_, "condition": condition, "arm": arm, **result})
                    print(json.dumps(runs[-1]), flush=True)
            finally:
                if spin is not None:
                    spin.kill()
                    spin.wait()
    figures: dict[str, Any] = {"runs": runs, "arms": {}}
    for arm in arms:

        def of(condition: str, arm: str = arm) -> list[dict[str, Any]]:
            return [r for r in runs if (r["arm"], r["condition"]) == (arm, condition)]

        speed = {c: statistics.median(r["steps_per_s"] for r in of(c)) for c in ("quiet", "busy")}
        chosen = {c: sorted({r["threads"] for r in of(c)}) for c in ("quiet", "busy")}
        figures["arms"][arm] = {
            "quiet_steps_per_s": round(speed["quiet"], 2),
            "busy_steps_per_s": round(speed["busy"], 2),
            "busy_share_of_quiet": round(speed["busy"] / speed["quiet"], 3),
            "threads": chosen,
        }
    path = write_record(
        "cpu_contention",
        figures,
        seeds=[0],
        budget={"steps": args.steps, "rounds": args.rounds},
        threads=0,  # per arm: see each arm's "threads"
        argv=argv if argv is not None else sys.argv[1:],
        commit_measured=measured_at,
        name="cpu_contention",
        results=args.results,
    )
    print(json.dumps(figures["arms"], indent=2))
    print(f"record: {path}")
    return json.loads(path.read_text())


if __name__ == "__main__":
    main()
