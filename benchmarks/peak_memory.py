"""Peak memory of a whole run at each image size: train, sample, filter, evaluate, report.

    python benchmarks/peak_memory.py --data ../shared/data/clothing --sizes 64,128,256

Each size runs ``aigc-run scenario SCENARIO`` in a fresh process (the scenario's own
recipe and [sizes.N] block, the documented batch size) for --steps training steps, then
samples --count images and evaluates on --eval-samples; the process's peak resident
memory (VmHWM) and its wall-clock seconds are recorded. Training's memory does not grow
with the number of steps, so a few steps measure what a long run needs, apart from the
data set held in memory, which the figure includes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script or by a test

from records import RESULTS, write_record

MEASURE = """
import sys
from pathlib import Path
from aigc_run.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    status = Path("/proc/self/status").read_text().splitlines()
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(f"peak-mb {peak // 1024}")
"""


def measure(scenario: str, data: str | None, size: int, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as home:
        sets = [
            f"data.image_size={size}", f"train.steps={args.steps}", "train.device=cpu",
            f"sample.count={args.count}", f"evaluate.samples={args.eval_samples}",
            f"output.folder={home}/run",
        ]  # fmt: skip
        command = ["scenario", scenario, "--quiet", *(["--data", data] if data else [])]
        command += [a for s in sets for a in ("--set", s)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIGC_")}
        env["AIGC_HOME"] = home
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, env=env
        )
        seconds = time.monotonic() - started
    if done.returncode != 0 or "peak-mb" not in done.stdout:
        raise SystemExit(f"the {size}-px run failed:\n{done.stdout}\n{done.stderr}")
    data_line = next((line for line in done.stdout.splitlines() if line.startswith("data:")), "")
    return {
        "peak_mb": int(done.stdout.rsplit("peak-mb", 1)[1]),
        "seconds": round(seconds, 1),
        "data": data_line,
    }


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", default="ecommerce")
    parser.add_argument("--data", help="the scenario's --data (default: its built-in demo)")
    parser.add_argument("--sizes", default="64,128,256")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--count", type=int, default=64, help="samples kept")
    parser.add_argument("--eval-samples", type=int, default=200)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    figures: dict[str, list[dict]] = {"runs": []}
    for size in sizes:
        figures["runs"].append({"size": size, **measure(args.scenario, args.data, size, args)})
        print(figures["runs"][-1], flush=True)
    path = write_record(
        "peak_memory",
        figures,
        seeds=[0],
        budget={"train_steps": args.steps, "samples": args.count},
        threads=os.cpu_count() or 1,
        argv=argv,
        results=args.results,
        scenario=args.scenario,
        data=args.data,
    )
    print(f"record: {path}")
    return figures


if __name__ == "__main__":
    main()
