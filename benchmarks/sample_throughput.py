"""Sampling throughput: the engine's sampler against a plain ``G(z)`` loop, same model, same run.

    python benchmarks/sample_throughput.py [--device cpu|cuda] [--image-size 32] [--width 32]
        [--batch-sizes 64,256,1024] [--images 4096] [--rounds 5] [--png-images 16384] [--compile]
        [--json out.json]

Two figures per batch size, images per second:
  generator   noise -> G -> uint8, on the device (the engine: ``generation.generate_on_device``,
              which draws each image's noise from (seed, index) so it can be regenerated)
  end to end  the same, filters off, written as PNG files (the engine: ``sampling.sample``
              with the png writer in worker processes; the plain loop saves each PNG in turn)
The generator figures are the median of --rounds alternating measurements. The engine/plain
ratio is the figure to watch (target >= 0.95). For end to end it also
prints CPU use, all processes together, as a share of the machine's cores. On CUDA it also
prints the share of the device's peak bf16 FLOP/s that the generator uses.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from aigc_run.contract.components import FilterContext, ModelSpec, SampleWriter
from aigc_run.contract.images import write_png
from aigc_run.models.gan import create
from aigc_run.plugins import Contribution
from aigc_run.run import generation, sampling
from aigc_run.scenario import resolve

CLASSES = 6
# Dense bf16 tensor-core peaks (no sparsity), the first name found in the device's wins:
# the PCIe and NVL H100s are slower than the SXM one.
PEAK_BF16 = {
    "H100 PCIe": 756e12,
    "H100 NVL": 835e12,
    "H100": 989e12,
    "H200": 989e12,
    "A100": 312e12,
    "L4": 121e12,
    "B200": 2250e12,
}


def plain_generator(model, batch: int, device: str):
    """The loop a user would write: random noise, G, uint8 (on the device, as the engine's)."""
    labels = torch.arange(batch, device=device) % CLASSES
    net = model.generator_ema
    cuda = device.startswith("cuda")

    def step(_start: int) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cuda", torch.bfloat16, enabled=cuda):
            z = torch.randn(batch, model.latent_dim, device=device)
            images = net(z, labels).float().clamp(-1, 1).add(1).mul(127.5).round()
            return images.to(torch.uint8)

    return step


def engine_generator(model, batch: int, device: str):
    labels = torch.arange(batch) % CLASSES

    def step(start: int) -> torch.Tensor:
        indices = range(start, start + batch)
        return generation.generate_on_device(model, 1234, indices, labels, None, device)[1]

    return step


def compiled_generator(model, batch: int, device: str):
    """The engine with ``sample.compile = true``: compiled once here, before the timing
    (dynamo's caches emptied first, so each batch size times its own compile)."""
    torch._dynamo.reset()
    fast = generation.Compiled(model)
    step = engine_generator(fast, batch, device)
    step(0)
    return step


def images_per_second(step, batch: int, images: int, device: str) -> float:
    step(0)  # warm-up: allocator, kernels
    sync(device)
    started = time.perf_counter()
    done = 0
    while done < images:
        step(done)
        done += batch
    sync(device)
    return done / (time.perf_counter() - started)


def alternating(plain_step, engine_step, batch: int, args) -> tuple[float, float]:
    """Median images/s of each over ``args.rounds`` rounds, taking turns to go first: the
    two loops run the same model, so on a CPU the noise of the machine is most of any gap."""
    rates: dict[str, list[float]] = {"plain": [], "engine": []}
    steps = {"plain": plain_step, "engine": engine_step}
    for round_ in range(args.rounds):
        for name in ("plain", "engine") if round_ % 2 == 0 else ("engine", "plain"):
            rates[name].append(images_per_second(steps[name], batch, args.images, args.device))
    return statistics.median(rates["plain"]), statistics.median(rates["engine"])


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def cpu_seconds() -> float:
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def plain_to_png(model, batch: int, images: int, device: str, folder: Path) -> tuple[float, float]:
    step = plain_generator(model, batch, device)
    return _timed(lambda: _plain_png_loop(step, batch, images, folder), images)


def _plain_png_loop(step, batch: int, images: int, folder: Path) -> None:
    done = 0
    while done < images:
        pixels = step(done).cpu()
        write_png(folder, [f"{done + k:07d}" for k in range(len(pixels))], pixels)
        done += batch


def engine_to_png(model, batch: int, images: int, device: str, folder: Path) -> tuple[float, float]:
    scenario = resolve(
        {
            "name": "benchmark",
            "data": {"source": "none"},
            "sample": {"count": images, "batch_size": batch, "max_tries": 1},
            "output": {"write_processes": "auto"},
        },
        environ={},
    )
    writer = Contribution("aigc-run", SampleWriter("png", "png", write_png))
    empty = torch.zeros(0, 3, 1, 1)
    names = [f"class{c}" for c in range(CLASSES)]
    context = FilterContext(torch.zeros(0, dtype=torch.int64), empty, torch.zeros(0), names)

    def run() -> None:
        sampling.sample(model, scenario, [], writer, context, device, folder, lambda b, r: None)

    return _timed(run, images)


def _timed(run, images: int) -> tuple[float, float]:
    cpu_before, started = cpu_seconds(), time.perf_counter()
    run()
    wall = time.perf_counter() - started
    busy = (cpu_seconds() - cpu_before) / wall / (os.cpu_count() or 1)
    return images / wall, busy


def flops_per_image(model, device: str) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    z = torch.randn(8, model.latent_dim, device=device)
    labels = torch.zeros(8, dtype=torch.int64, device=device)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model.generator_ema(z, labels)
    return counter.get_total_flops() / 8


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch-sizes", default="64,256,1024")
    parser.add_argument("--images", type=int, default=4096, help="per generator measurement")
    parser.add_argument("--rounds", type=int, default=5, help="generator measurements of each")
    parser.add_argument(
        "--png-images",
        type=int,
        default=16384,
        help="per end-to-end run (the engine starts its writer processes within it)",
    )
    parser.add_argument("--compile", action="store_true", help="also time sample.compile")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    spec = ModelSpec(3, args.image_size, CLASSES, True, {"width": args.width}, {}, args.device)
    torch.manual_seed(0)
    model = create(spec)
    flops = flops_per_image(model, args.device)
    peak = next((v for k, v in PEAK_BF16.items() if k in _device_name(args.device)), None)
    print(
        f"device {_device_name(args.device)}, {os.cpu_count()} cores; G {args.image_size}px "
        f"width {args.width}: {flops / 1e6:.1f} MFLOP per image"
    )
    rows = []
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        plain, engine = alternating(
            plain_generator(model, batch, args.device),
            engine_generator(model, batch, args.device),
            batch,
            args,
        )
        row = {
            "batch": batch,
            "generator_plain": plain,
            "generator_engine": engine,
            "generator_ratio": engine / plain,
        }
        line = (
            f"batch {batch:5d}  generator: plain {plain:10.0f}/s  engine {engine:10.0f}/s "
            f"ratio {engine / plain:.3f}"
        )
        if args.compile:
            started = time.perf_counter()
            step = compiled_generator(model, batch, args.device)
            row["compile_seconds"] = time.perf_counter() - started
            row["generator_compiled"] = images_per_second(step, batch, args.images, args.device)
            line += (
                f"\n             compiled:  {row['generator_compiled']:10.0f}/s (ratio to plain "
                f"{row['generator_compiled'] / plain:.3f}, compiling took "
                f"{row['compile_seconds']:.0f} s)"
            )
        if peak:
            row["share_of_peak_bf16"] = engine * flops / peak
            line += f"  ({row['share_of_peak_bf16']:.1%} of peak bf16)"
        if args.png_images:
            with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
                plain_png, plain_busy = plain_to_png(
                    model, batch, args.png_images, args.device, Path(a)
                )
                engine_png, engine_busy = engine_to_png(
                    model, batch, args.png_images, args.device, Path(b)
                )
            row.update(
                png_plain=plain_png,
                png_engine=engine_png,
                png_ratio=engine_png / plain_png,
                cpu_busy_plain=plain_busy,
                cpu_busy_engine=engine_busy,
            )
            line += (
                f"\n             to PNG:    plain {plain_png:10.0f}/s  engine "
                f"{engine_png:10.0f}/s ratio {engine_png / plain_png:.3f}  CPU busy: "
                f"plain {plain_busy:.0%}, engine {engine_busy:.0%}"
            )
        print(line, flush=True)
        rows.append(row)
    if args.json:
        cuda = args.device.startswith("cuda")
        peak_memory = torch.cuda.max_memory_allocated(args.device) if cuda else None
        figures = {"device": _device_name(args.device), "flops_per_image": flops}
        figures |= {"rows": rows, "peak_gpu_bytes": peak_memory}
        args.json.write_text(json.dumps(figures, indent=2))


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return "cpu"


if __name__ == "__main__":
    main()
