"""Record what the golden scenarios produce, for tests/test_golden.py to compare against.

Run it only to accept a deliberate change in what a run draws, and say why in the commit:
``python tests/golden/record.py``. Each scenario here runs through the CLI in a fresh
process on one thread, and its final checkpoint, manifest and the sha256 of every
written image's pixels are kept in ``tests/golden/<scenario>/``, and ``machine.json``
names the CPU and torch build that recorded them: float rounding differs between CPU
kernels, so only a machine of the same kind can be held to every bit.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent


def run(scenario: Path, home: Path, output: Path) -> None:
    """Run ``scenario`` the way a user would, on one thread, so the result is reproducible."""
    env = {**os.environ, "AIGC_HOME": str(home), "OMP_NUM_THREADS": "1"}
    env = {k: v for k, v in env.items() if not k.startswith("AIGC_") or k == "AIGC_HOME"}
    command = [sys.executable, "-m", "aigc_run.cli", "scenario", str(scenario), "--quiet"]
    command += ["--set", f"output.folder={output.as_posix()!r}"]
    subprocess.run(command, env=env, check=True, capture_output=True)


def machine() -> dict[str, str]:
    """What decides the float rounding of a CPU run: the CPU (vendor, family, model), the
    vector instructions torch's kernels use, and the torch build."""
    import torch

    cpu: dict[str, str] = {}
    info = Path("/proc/cpuinfo")
    for line in info.read_text().splitlines() if info.exists() else []:
        key, _, value = line.partition(":")
        if key.strip() in ("vendor_id", "cpu family", "model") and key.strip() not in cpu:
            cpu[key.strip()] = value.strip()
    return {
        **cpu,
        "capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
    }


def pixels(output: Path) -> dict[str, str]:
    """The sha256 of the decoded pixels of every image the run wrote, by relative name."""
    import numpy as np
    from PIL import Image

    return {
        path.relative_to(output).as_posix(): hashlib.sha256(
            np.asarray(Image.open(path)).tobytes()
        ).hexdigest()
        for path in sorted(output.glob("*/*/*.png"))
    }


def main() -> None:
    for scenario in sorted(HERE.glob("*.toml")):
        with tempfile.TemporaryDirectory() as tmp:
            output = Path(tmp) / "run"
            run(scenario, Path(tmp) / "home", output)
            keep = HERE / scenario.stem
            shutil.rmtree(keep, ignore_errors=True)
            keep.mkdir()
            final = sorted((output / "checkpoints").glob("*.safetensors"))[-1]
            shutil.copy(final, keep / "checkpoint.safetensors")
            shutil.copy(output / "manifest.csv", keep / "manifest.csv")
            (keep / "pixels.json").write_text(json.dumps(pixels(output), indent=1) + "\n")
            print(f"{scenario.name}: recorded {keep}")
    (HERE / "machine.json").write_text(json.dumps(machine(), indent=1) + "\n")


if __name__ == "__main__":
    main()
