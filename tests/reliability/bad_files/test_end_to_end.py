"""Broken files through the whole program: ``aigc-run scenario`` in a subprocess prints the
skip counts and exits 0 while good files remain, and exits non-zero with a two-line error
(no traceback) when none do. The corpus here includes named pipes, which hang a loader that
opens them: the subprocess's timeout turns such a hang into a failure. The decompression
bombs are loaded in a fresh process whose peak memory is measured."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

TINY = ("--set", "train.steps=2", "--set", "model.width=8", "--set", "sample.count=4",
        "--set", "data.image_size=16", "--quiet")  # fmt: skip
PEAK_LIMIT_MB = 250  # the loaders and their imports take about 100; one bomb decoded: > 300

MEASURE = """
import resource, sys
from pathlib import Path
from aigc_ecommerce.folder import load_folder
from aigc_medical.loaders import load, load_npz
from aigc_run import DataRequest, Skipped
from aigc_run import DataError

data = Path(sys.argv[1])
reasons = [x.reason for x in load_folder(data / "ecommerce", {}, 16) if isinstance(x, Skipped)]
request = DataRequest(data / "medical", {}, 16, 1, 0)
reasons += [x.reason for x in load(request) if isinstance(x, Skipped)]
try:
    load_npz(data / "bomb.npz", {})
except DataError:
    reasons.append("npz refused")
print(sorted(reasons))
try:  # this process's own peak: ru_maxrss would carry over the parent's from before exec
    status = Path("/proc/self/status").read_text().splitlines()
    print(next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) // 1024)
except OSError:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def test_bombs_are_refused_in_bounded_memory(broken, tmp_path: Path, tally) -> None:
    for folder in ("ecommerce", "medical"):
        broken.bomb_png(tmp_path / folder / "bomb.png")
        broken.bomb_jpeg(tmp_path / folder / "bomb.jpg")
        # 100 million pixels: Pillow only warns (up to twice MAX_IMAGE_PIXELS) and decodes
        broken.bomb_png(tmp_path / folder / "bomb-warning.png", side=10_000)
        broken.good(tmp_path / folder / "good.png")
    broken.nifti_bomb(tmp_path / "medical" / "bomb.nii")
    broken.dicom_bomb(tmp_path / "medical" / "bomb.dcm")
    broken.npz_bomb(tmp_path / "bomb.npz")
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    reasons, peak_mb = done.stdout.strip().splitlines()
    assert reasons == str(["image too large"] * 7 + ["npz refused", "unreadable image"])
    assert int(peak_mb) < PEAK_LIMIT_MB, f"peak memory {peak_mb} MB while refusing the bombs"
    tally["bad inputs tried"] += 9
    tally["bad inputs tried: decompression bombs, memory measured"] += 9


def _aigc(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIGC_HOME": str(home), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "aigc_run.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def _corpus(broken, root: Path, medical: bool) -> Counter[str]:
    """Class folders with every broken image, the unusual ones and a few good ones."""
    expected = Counter(broken.broken_images(root / "a").values())
    broken.unusual_images(root / "a")
    for i in range(4):
        broken.good(root / "b" / f"{i}.png", seed=i)
    (root / "a" / "escape.png").symlink_to(broken.good(root.parent / "elsewhere.png"))
    expected["path outside data folder"] += 1
    broken.named_pipe(root / "a" / "pipe.png")  # a loader that opens it never returns
    expected["not a regular file"] += 1
    if medical:
        broken.named_pipe(root / "a" / "pipe.dcm")
        broken.named_pipe(root / "a" / "pipe")  # no extension: not even a candidate
        expected["not a regular file"] += 1
        broken.dicom(root / "a" / "no-pixels.dcm", pixels=False)
        broken.dicom(root / "a" / "jpeg-ls.dcm", transfer_syntax="1.2.840.10008.1.2.4.80")
        broken.nifti(root / "a" / "5d.nii.gz", (4, 4, 2, 2, 2))
        broken.nifti_bomb(root / "a" / "bomb.nii")
        expected.update(["DICOM without pixel data", "DICOM compression without a decoder",
                         "NIfTI not 2-D, 3-D or 4-D", "image too large"])  # fmt: skip
    return expected


@pytest.mark.parametrize("scenario", ["ecommerce", "medical"])
def test_run_on_a_broken_corpus_counts_the_skips(
    broken, tmp_path: Path, tally: Counter[str], scenario: str
) -> None:
    data = tmp_path / "data"
    expected = _corpus(broken, data, medical=scenario == "medical")
    done = _aigc(tmp_path / "home", "scenario", scenario, "--data", str(data), *TINY)
    assert done.returncode == 0, done.stderr
    counts = ", ".join(f"{reason} {n}" for reason, n in sorted(expected.items()))
    assert f"skipped: {counts}" in done.stdout
    assert "data: 8 images" in done.stdout  # 4 unusual + 4 good
    assert "Traceback" not in done.stdout + done.stderr
    tally["bad inputs tried"] += expected.total()
    tally[f"bad inputs tried: aigc-run scenario {scenario}"] += expected.total()


@pytest.mark.parametrize("scenario", ["ecommerce", "medical"])
def test_run_on_nothing_but_broken_files_is_a_clear_error(
    broken, tmp_path: Path, tally: Counter[str], scenario: str
) -> None:
    data = tmp_path / "data"
    expected = broken.broken_images(data / "a")
    done = _aigc(tmp_path / "home", "scenario", scenario, "--data", str(data), *TINY)
    assert done.returncode != 0
    assert "Traceback" not in done.stdout + done.stderr
    error, hint = done.stderr.strip().splitlines()[-2:]
    assert error.startswith("Error:") and str(data) in error and hint.startswith("Hint:")
    for reason, n in Counter(expected.values()).items():
        assert f"{n} {reason}" in error
    tally["bad inputs tried"] += len(expected)
    tally[f"bad inputs tried: aigc-run scenario {scenario} (all broken)"] += len(expected)
