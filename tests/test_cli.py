"""What a user sees at the command line: bad input gives a short error and no traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aigc_run.registry import Registry
from aigc_run.settings import Settings

AIGC_RUN = str(Path(sys.executable).parent / "aigc-run")
TINY = [
    "--quiet",
    "--set",
    "train.steps=3",
    "--set",
    "sample.count=4",
    "--set",
    "model.width=8",
    "--set",
    "train.batch_size=4",
]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AIGC_RUN, *args], capture_output=True, text=True, timeout=300)


def assert_short_error(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert "\nError: " in "\n" + result.stderr
    assert "Hint: " in result.stderr
    for text in expected:
        assert text in result.stderr


def test_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    # The first word of each line of the Commands section: whole names, so "scenario" is
    # not found inside "scenarios".
    section = result.stdout.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
    listed = {line.split()[0] for line in section.splitlines() if line.startswith("  ")}
    assert {"scenario", "scenarios", "plugins", "runs", "resume"} <= listed


def test_unknown_scenario():
    assert_short_error(run_cli("scenario", "bakery"), "no scenario named 'bakery'", "ecommerce")


def test_negative_steps():
    result = run_cli("scenario", "ecommerce", "--set", "train.steps=-3")
    assert_short_error(result, "train.steps", "greater than or equal to 1")
    assert result.returncode == 2


def test_unknown_set_key():
    assert_short_error(
        run_cli("scenario", "ecommerce", "--set", "train.epochs=3"), "train.epochs: unknown setting"
    )


def test_empty_folder(tmp_path):
    empty = tmp_path / "photos"
    empty.mkdir()
    assert_short_error(run_cli("scenario", "ecommerce", "--data", str(empty)), str(empty))
    (run,) = Registry(Settings().registry_url).list_runs()
    assert run.status == "failed"  # recorded, and never left running


def test_missing_data_path(tmp_path):
    assert_short_error(
        run_cli("scenario", "medical", "--data", str(tmp_path / "nope.npz")), "does not exist"
    )


def test_npz_without_expected_keys(tmp_path):
    bad = tmp_path / "scans.npz"
    np.savez(bad, pictures=np.zeros((4, 28, 28), np.uint8))
    assert_short_error(run_cli("scenario", "medical", "--data", str(bad)), "pictures")


def test_debug_shows_the_traceback():
    result = run_cli("--debug", "scenario", "bakery")
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_corrupt_and_fake_images_are_skipped_and_counted(tmp_path):
    photos = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for label in ("Shoes", "Hats"):
        (photos / label).mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(photos / label / f"{i}.jpg")
    good = (photos / "Shoes" / "0.jpg").read_bytes()
    (photos / "Shoes" / "broken.jpg").write_bytes(good[: len(good) // 3])
    (photos / "Hats" / "notes.png").write_text("this is not a picture")
    result = run_cli(
        "scenario",
        "ecommerce",
        "--data",
        str(photos),
        *TINY,
        "--set",
        "filters.background-clean=off",
    )
    assert result.returncode == 0, result.stderr
    assert "data: 24 images" in result.stdout
    assert "unreadable image 2" in result.stdout
    (run,) = Registry(Settings().registry_url).list_runs()
    assert run.status == "completed"


def test_runs_lists_and_shows(tmp_path):
    loud = [a for a in TINY if a != "--quiet"]
    done = run_cli("scenario", "medical", *loud, "--set", "train.steps=10",
                   "--set", "data.options.demo_count=60")  # fmt: skip
    # Not a terminal: progress is a plain line every tenth of the work, never a bar.
    log = done.stdout + done.stderr
    assert "train: 1/10 step (10%)" in done.stderr and "train: 10/10 step (100%)" in log
    assert "\r" not in log and len(log.splitlines()) < 60
    listing = run_cli("runs")
    assert listing.returncode == 0 and "medical" in listing.stdout
    run_id = listing.stdout.split()[0]
    shown = run_cli("runs", "show", run_id)
    assert shown.returncode == 0, shown.stderr
    assert "[completed]" in shown.stdout and "checkpoint step 10" in shown.stdout
    assert_short_error(run_cli("runs", "show", "999"), "no run with id 999")


@pytest.mark.parametrize("name", ["ecommerce", "medical"])
def test_scenarios_lists_both_verticals(name):
    result = run_cli("scenarios")
    assert name in result.stdout


def test_scenarios_line_up_whatever_the_length_of_a_name(install_plugin):
    install_plugin(
        "bakery",
        """
        from aigc_run import ScenarioFile, hookimpl

        @hookimpl
        def register_scenarios():
            content = {"name": "loaves", "data": {"source": "products"}}
            return [ScenarioFile("sourdough-loaves-at-64-px", "long-named", content=content)]
        """,
    )
    lines = run_cli("scenarios").stdout.splitlines()
    assert len(lines) == 3 and lines[-1].endswith("long-named")
    descriptions = [line.split("  ")[-1].strip() for line in lines]
    assert len({len(line) - len(d) for line, d in zip(lines, descriptions, strict=True)}) == 1


#: Trains a tiny GAN until it is stopped, every step recorded: the signal tests do not
#: depend on a shipped recipe, whose changes once made them time out.
TINY_SCENARIO = Path(__file__).parent / "fixtures" / "tiny.toml"


def _start_long_run(*extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [AIGC_RUN, "scenario", str(TINY_SCENARIO), "--quiet", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A suite started in the background (`... &` without job control) passes SIGINT on
        # ignored, and Python then leaves it ignored: give the run the default disposition.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for_training(registry: Registry, process: subprocess.Popen[str]) -> int:
    for _ in range(600):
        runs = registry.list_runs()
        if runs and registry.get_run(runs[0].id).metric_points > 0:
            return runs[0].id
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    raise AssertionError("training did not start within a minute")


def test_ctrl_c_marks_the_run_interrupted():
    registry = Registry(Settings().registry_url)
    process = _start_long_run()
    run_id = _wait_for_training(registry, process)
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in err
    assert registry.get_run(run_id).status == "interrupted"


def test_killed_run_is_marked_interrupted_on_the_next_start():
    registry = Registry(Settings().registry_url)
    process = _start_long_run()
    run_id = _wait_for_training(registry, process)
    process.kill()
    process.wait()
    assert registry.get_run(run_id).status == "running"  # nobody could record the death
    listing = run_cli("runs")
    assert "interrupted" in listing.stdout
    assert registry.get_run(run_id).status == "interrupted"
