"""The HTTP service under load, beside the same model's in-process ``generate``.

    python benchmarks/serve_load.py --clients 16 --seconds 20

Without --model, a small ecommerce run (the demo catalogue, the scenario's 32-px recipe,
--train-steps steps: its speed, not its quality, is measured) is trained in a temporary
AIGC_HOME and exported. The server (``aigc-run serve``, its own process) is driven by
--clients threads, each asking for --per-request images at a time, unfiltered, for
--seconds; requests/s, images/s, p50/p99 latency and errors are counted, and /health says
how many generator rounds served them, so how many images a round drew on average (and
on how many batcher threads). Then,
with the server stopped, the in-process arm draws that many images per ``generate`` call
for --seconds. The arms alternate --repeats times; the record has each arm's median and
spread, and the ratio served / in-process images/s of each repeat.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script or by a test

from records import RESULTS, commit, write_record

AIGC_RUN = str(Path(sys.executable).parent / "aigc-run")


def make_model(folder: Path, steps: int) -> Path:
    """Train a small ecommerce run in ``folder`` and export it; returns the export."""
    env = {**os.environ, "AIGC_HOME": str(folder / "home")}
    train = [AIGC_RUN, "scenario", "ecommerce", "--quiet", "--set", f"train.steps={steps}"]
    train += ["--set", "evaluate.metrics=[]", "--set", "sample.count=16"]
    subprocess.run(train, env=env, check=True)
    subprocess.run([AIGC_RUN, "export", "1", "--out", str(folder / "export")], env=env, check=True)
    return folder / "export"


def post(connection: http.client.HTTPConnection, body: dict[str, Any]) -> tuple[int, int]:
    """(HTTP status, images returned), over a kept-alive connection (as any HTTP client
    library keeps one: a new TCP connection per request would measure the handshakes)."""
    headers = {"Content-Type": "application/json"}
    connection.request("POST", "/generate", json.dumps(body).encode(), headers)
    response = connection.getresponse()
    answer = response.read()
    return response.status, len(json.loads(answer)["images"]) if response.status == 200 else 0


def served(model: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The server under --clients concurrent clients for --seconds."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    command = [AIGC_RUN, "serve", str(model), "--port", str(port), "--device", "cpu"]
    env = dict(os.environ)
    if args.server_threads:
        env["AIGC_THREADS"] = args.server_threads
    server = subprocess.Popen([*command, "--max-count", str(args.per_request)], env=env)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(url + "/health", timeout=5).close()
                break
            except OSError:
                time.sleep(0.2)
        before = json.loads(urllib.request.urlopen(url + "/health").read())
        end = time.monotonic() + args.seconds

        def client(number: int) -> list[tuple[float, int, int]]:
            done, k = [], 0
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            while time.monotonic() < end:
                ask = {"count": args.per_request, "filtered": False, "format": "json",
                       "seed": number * 1_000_000 + k}  # fmt: skip
                started = time.monotonic()
                status, images = post(connection, ask)
                done.append((time.monotonic() - started, status, images))
                k += 1
            connection.close()
            return done

        started = time.monotonic()
        with ThreadPoolExecutor(args.clients) as pool:
            calls = [c for part in pool.map(client, range(args.clients)) for c in part]
        seconds = time.monotonic() - started
        after = json.loads(urllib.request.urlopen(url + "/health").read())
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies = sorted(c[0] for c in calls)
    rounds = after["rounds"] - before["rounds"]
    return {
        "requests": len(calls),
        "errors": sum(c[1] != 200 for c in calls),
        "requests_per_s": len(calls) / seconds,
        "images_per_s": sum(c[2] for c in calls) / seconds,
        "p50_s": latencies[len(latencies) // 2],
        "p99_s": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "rounds": rounds,
        "images_per_round": (after["images"] - before["images"]) / max(rounds, 1),
        "batcher_threads": after.get("workers", 1),
    }


def in_process(model: Path, batch: int, seconds: float) -> dict[str, Any]:
    """The same model's ``generate`` drawing ``batch`` images a call, for ``seconds``."""
    import aigc_run

    loaded = aigc_run.load(model, device="cpu")
    loaded.generate(batch, filtered=False, seed=0)  # warm up
    images, k, started = 0, 1, time.monotonic()
    while time.monotonic() - started < seconds:
        images += len(loaded.generate(batch, filtered=False, seed=k).indices)
        k += 1
    return {"batch": batch, "images_per_s": images / (time.monotonic() - started)}


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="an export folder (default: train one)")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--per-request", type=int, default=4, help="images each request asks for")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--server-threads", help="the server's AIGC_THREADS (default: its own policy)")
    p.add_argument("--train-steps", type=int, default=50)
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    measured_at = commit()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or make_model(Path(tmp), args.train_steps)
        runs = []
        for repeat in range(args.repeats):
            server = served(model, args)
            batch = max(1, round(server["images_per_round"]))
            local = in_process(model, batch, args.seconds)
            runs.append({"served": server, "in_process": local,
                         "ratio": server["images_per_s"] / local["images_per_s"]})  # fmt: skip
            print(json.dumps({"repeat": repeat, **runs[-1]}), flush=True)
    figures = {
        "served_images_per_s": spread([r["served"]["images_per_s"] for r in runs]),
        "in_process_images_per_s": spread([r["in_process"]["images_per_s"] for r in runs]),
        "ratio": spread([r["ratio"] for r in runs]),
        "requests_per_s": spread([r["served"]["requests_per_s"] for r in runs]),
        "p50_s": spread([r["served"]["p50_s"] for r in runs]),
        "p99_s": spread([r["served"]["p99_s"] for r in runs]),
        "errors": sum(r["served"]["errors"] for r in runs),
        "runs": runs,
    }
    path = write_record(
        "serve_load",
        figures,
        seeds=[],
        budget={"seconds_per_arm": args.seconds, "repeats": args.repeats},
        threads=len(os.sched_getaffinity(0)),
        argv=argv,
        commit_measured=measured_at,
        results=args.results,
        clients=args.clients,
        per_request=args.per_request,
        server_threads=args.server_threads or "the server's own policy",
        model=str(args.model) if args.model else f"ecommerce demo, {args.train_steps} steps",
    )
    print(f"record: {path}")
    return figures


if __name__ == "__main__":
    main()
