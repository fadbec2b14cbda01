"""The GPU path in one command: what breaks first, then what it is worth.

    python benchmarks/gpu_check.py                      # on a lent GPU: under 8 minutes
    python benchmarks/gpu_check.py --device cpu --quick  # the script itself, in CI

Parts, in order, each in its own processes so that one failure (a CUDA error poisons the
process it happens in) does not stop the rest; the summary is rewritten after each part:
  smoke       the likeliest failures, in seconds: a 6-step ecommerce run killed at step 5
              (AIGC_FAULT), resumed from its step-3 checkpoint (Adam's moments meet the
              channels_last networks), sampled again, one sample regenerated and compared
              with the file the run wrote (grey levels apart)
  cuda_tests  pytest -m cuda: CPU/GPU noise agreement, the filters on the device
  train       the ecommerce recipe's steps/s at each --sizes, bf16 against fp32 in
              alternating rounds, each the engine beside the plain loop
              (benchmarks/train_overhead.py), and peak GPU memory
  sampling    noise -> G -> uint8 on the device at 64 px with the width-64 generator,
              eager and compiled, at --batch-sizes: images/s and the share of the card's
              peak bf16 FLOP/s (benchmarks/sample_throughput.py), and peak GPU memory
  end_to_end  aigc-run scenario ecommerce on the device for --e2e-steps steps, then
              aigc-run sample --count --e2e-count through the filters: wall seconds and
              images/s of the sampling
Writes benchmarks/results/gpu_check-<device>.json (``--out``) and prints it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))  # run as a script or loaded by a test

from records import RESULTS, commit, machine  # noqa: E402

AIGC_RUN = str(Path(sys.executable).parent / "aigc-run")


def run(command: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run ``command``; its exit code, seconds and the tail of its output."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO
        )
        code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as e:
        code, output = None, f"timed out after {timeout:.0f} s: {e.stdout or ''}"
    seconds = round(time.monotonic() - started, 2)
    return {"command": " ".join(command), "returncode": code, "seconds": seconds,
            "tail": str(output)[-1500:]}  # fmt: skip


def smoke(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        home = {**env, "AIGC_HOME": tmp}
        settings = [f"train.device={args.device!r}", "train.steps=6", "train.checkpoint_every=3",
                    "train.log_every=1", "sample.count=16", "evaluate.metrics=[]",
                    *args.small]  # fmt: skip
        scenario = [AIGC_RUN, "scenario", "ecommerce", "--quiet"]
        scenario += [a for s in settings for a in ("--set", s)]
        steps = {"killed": run(scenario, {**home, "AIGC_FAULT": "train-step:5"}, 300)}
        steps["killed"]["expected"] = steps["killed"]["returncode"] == -signal.SIGKILL
        steps["resume"] = run([AIGC_RUN, "resume", "1", "--quiet"], home, 300)
        steps["sample"] = run([AIGC_RUN, "sample", "1", "--count", "16"], home, 300)
        # the run's first written sample, drawn again from its index
        (manifest,) = Path(tmp).glob("runs/*/manifest.csv") or [None]
        rows = [] if manifest is None else list(csv.DictReader(manifest.open()))
        row = next((r for r in rows if r["file"]), None)
        if row is not None:
            again = Path(tmp) / "again"
            command = [AIGC_RUN, "sample", "1", "--regenerate", row["index"], "--out", str(again)]
            steps["regenerate"] = run(command, home, 300)
            from PIL import Image

            redrawn = sorted(again.glob("*/*.png"))
            if redrawn:
                a, b = (np.asarray(Image.open(p), dtype=np.int16)
                        for p in (manifest.parent / row["file"], redrawn[0]))  # fmt: skip
                steps["regenerate"]["max_grey_levels_apart"] = int(np.abs(a - b).max())
    ok = steps["killed"]["expected"] and all(
        s["returncode"] == 0 for k, s in steps.items() if k != "killed"
    )
    return {"ok": ok, "steps": steps}


def cuda_tests(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    where = ["tests/test_noise.py"] if args.quick else []  # quick: the call, not the suite
    done = run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
                "-rs", *where], env, 600)  # fmt: skip
    return {"ok": done["returncode"] in (0, 5), **done}  # 5: none collected


def train(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    sizes: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            rates: dict[str, dict[str, list[float]]] = {"bf16": {}, "fp32": {}}
            peaks: dict[str, int] = {}
            for round_ in range(args.rounds):
                for precision in ("bf16", "fp32") if round_ % 2 == 0 else ("fp32", "bf16"):
                    out = Path(tmp) / f"{size}-{precision}-{round_}"
                    command = [sys.executable, "benchmarks/train_overhead.py", "--device",
                               args.device, "--image-size", str(size), "--precision",
                               precision, "--rounds", "1", "--steps", str(args.train_steps),
                               "--results", str(out)]  # fmt: skip
                    done = run(command, env, 600)
                    if done["returncode"] != 0:
                        return {"ok": False, "failed": done}
                    record = out / f"train_overhead-ecommerce-{size}.json"
                    figures = json.loads(record.read_text())["figures"]
                    for arm, values in figures["runs"][0]["rates"].items():
                        rates[precision].setdefault(arm, []).extend(values)
                    peaks[precision] = max(peaks.get(precision, 0),
                                           figures.get("peak_gpu_bytes") or 0)  # fmt: skip
            median = {p: {arm: statistics.median(v) for arm, v in arms.items()}
                      for p, arms in rates.items()}  # fmt: skip
            sizes[str(size)] = {
                "steps_per_s": median,
                "bf16_over_fp32": median["bf16"]["engine"] / median["fp32"]["engine"],
                "engine_over_plain": {p: m["engine"] / m["plain"] for p, m in median.items()},
                "peak_gpu_bytes": peaks,
                "rates": rates,
            }
    return {"ok": True, "sizes": sizes}


def sampling(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sampling.json"
        command = [sys.executable, "benchmarks/sample_throughput.py", "--device", args.device,
                   "--image-size", str(args.sample_size), "--width", str(args.sample_width),
                   "--batch-sizes", args.batch_sizes, "--images", str(args.sample_images),
                   "--rounds", str(args.rounds), "--png-images", "0",
                   "--json", str(out)]  # fmt: skip
        if not args.quick:
            command.append("--compile")
        done = run(command, env, 600)
        if done["returncode"] != 0:
            return {"ok": False, "failed": done}
        return {"ok": True, **json.loads(out.read_text()), "output": done["tail"]}


def end_to_end(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        home = {**env, "AIGC_HOME": tmp}
        settings = [f"train.device={args.device!r}", f"train.steps={args.e2e_steps}",
                    "sample.count=256", "evaluate.metrics=[]", *args.small]  # fmt: skip
        scenario = [AIGC_RUN, "scenario", "ecommerce", "--quiet"]
        trained = run(scenario + [a for s in settings for a in ("--set", s)], home, 600)
        if trained["returncode"] != 0:
            return {"ok": False, "failed": trained}
        sampled = run([AIGC_RUN, "sample", "1", "--count", str(args.e2e_count)], home, 600)
        if sampled["returncode"] != 0:
            return {"ok": False, "failed": sampled}
        return {
            "ok": True,
            "train_and_sample_seconds": trained["seconds"],
            "sample_seconds": sampled["seconds"],
            "sampled_images_per_s": args.e2e_count / sampled["seconds"],
            "sample_output": sampled["tail"][-300:],
        }


PARTS: dict[str, Callable[[argparse.Namespace, dict[str, str]], dict[str, Any]]] = {
    "smoke": smoke,
    "cuda_tests": cuda_tests,
    "train": train,
    "sampling": sampling,
    "end_to_end": end_to_end,
}


def device_facts(device: str) -> dict[str, Any]:
    import torch

    facts: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda}
    if device.startswith("cuda") and torch.cuda.is_available():
        facts["card"] = torch.cuda.get_device_name(0)
        facts["memory_bytes"] = torch.cuda.get_device_properties(0).total_memory
    else:
        facts["card"] = "cpu"
    return facts


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="tiny budgets: checks the script")
    p.add_argument("--parts", default=",".join(PARTS))
    p.add_argument("--out", type=Path, help="default: benchmarks/results/gpu_check-<card>.json")
    args = p.parse_args(argv)
    quick = args.quick
    args.sizes = [16] if quick else [32, 64, 128]
    args.rounds = 1 if quick else 3
    args.train_steps = 3 if quick else 100
    args.sample_size, args.sample_width = (32, 8) if quick else (64, 64)
    args.batch_sizes = "64" if quick else "1024,4096,16384,65536"
    args.sample_images = 128 if quick else 262144
    args.e2e_steps, args.e2e_count = (2, 16) if quick else (300, 100000)
    # quick: the demo catalogue small and at 16 px, a narrow network
    args.small = ["data.options.demo_count=48", "data.image_size=16", "model.width=8"]
    args.small = args.small if quick else []
    facts = device_facts(args.device)
    name = "".join(c if c.isalnum() else "-" for c in facts["card"]).strip("-").lower()
    out = args.out or RESULTS / f"gpu_check-{name}.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("AIGC_FAULT", None)
    summary: dict[str, Any] = {
        "benchmark": "gpu_check",
        "commit": commit(),
        "machine": machine(),
        "device": args.device,
        **facts,
        "quick": quick,
        "command": " ".join(["python", "benchmarks/gpu_check.py", *argv]),
        "parts": {},
    }
    for part in [x for x in args.parts.split(",") if x]:
        if part not in PARTS:
            raise SystemExit(f"--parts: unknown part {part!r}; the parts are {', '.join(PARTS)}")
        started = time.monotonic()
        try:
            result = PARTS[part](args, env)
        except Exception as e:  # the summary says what broke; the other parts still run
            result = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        result["seconds"] = round(time.monotonic() - started, 1)
        summary["parts"][part] = result
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
        print(f"{part}: {'ok' if result['ok'] else 'FAILED'} in {result['seconds']} s", flush=True)
    print(json.dumps({k: v.get("ok") for k, v in summary["parts"].items()}))
    print(f"summary: {out}")
    if shutil.which("nvidia-smi") and args.device.startswith("cuda"):
        subprocess.run(["nvidia-smi", "--query-gpu=name,memory.used", "--format=csv"])
    return summary


if __name__ == "__main__":
    main()
