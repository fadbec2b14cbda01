"""The catalogue output: PNGs in category folders and a feed of the accepted samples."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image

from aigc_ecommerce import plugin
from aigc_ecommerce.demo import CATEGORIES
from aigc_ecommerce.filters import background_clean
from aigc_run import FilteredBatch, RunInfo

AIGC_RUN = str(Path(sys.executable).parent / "aigc-run")


def _run(tmp_path: Path, writer: str) -> RunInfo:
    config = {"output": {"writer": writer}}
    return RunInfo(1, "ecommerce", config, tmp_path, "cpu")


def _feed(folder: Path) -> tuple[list[dict[str, str]], list[dict[str, object]]]:
    with (folder / "feed.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    lines = [json.loads(x) for x in (folder / "feed.jsonl").read_text().splitlines()]
    return rows, lines


def test_feed_lists_accepted_samples_with_category_seed_and_scores(tmp_path: Path) -> None:
    (writer,) = plugin.register_sample_writers()
    images = torch.full((2, 3, 8, 8), 200, dtype=torch.uint8)
    written = writer.write(tmp_path / "samples", ["Shoes/0000000", "T-Shirt_2/0000001"], images)
    assert written == ["Shoes/0000000.png", "T-Shirt_2/0000001.png"]
    assert Image.open(tmp_path / "samples" / written[0]).size == (8, 8)
    batch = FilteredBatch(
        seed=1234,
        indices=[0, 1, 2],
        labels=["Shoes", "T-Shirt 2", "Shoes"],
        scores={"sharpness": [0.3, 0.2, 0.01], "background-clean": [1.0, 0.9, 0.8]},
        accepted=[True, True, False],
        reasons=["", "", "sharpness 0.01 < 0.15"],
        files=["samples/Shoes/0000000.png", "samples/T-Shirt_2/0000001.png",
               "rejected/Shoes/0000002.png"],
    )  # fmt: skip
    plugin.after_samples_filtered(_run(tmp_path, "catalogue"), batch)
    rows, lines = _feed(tmp_path / "samples")
    assert rows == [
        {"file": "Shoes/0000000.png", "category": "Shoes", "seed": "1234", "index": "0",
         "score:background-clean": "1", "score:sharpness": "0.3"},
        {"file": "T-Shirt_2/0000001.png", "category": "T-Shirt 2", "seed": "1234", "index": "1",
         "score:background-clean": "0.9", "score:sharpness": "0.2"},
    ]  # fmt: skip
    assert lines[1] == {
        "file": "T-Shirt_2/0000001.png",
        "category": "T-Shirt 2",
        "seed": 1234,
        "index": 1,
        "scores": {"background-clean": 0.9, "sharpness": 0.2},
    }
    for row in rows:  # every file in the feed is on disk
        assert (tmp_path / "samples" / row["file"]).is_file()
    plugin.after_samples_filtered(_run(tmp_path, "catalogue"), batch)  # a second batch appends
    assert len(_feed(tmp_path / "samples")[0]) == 4


def test_no_feed_unless_the_catalogue_writer_is_chosen(tmp_path: Path) -> None:
    batch = FilteredBatch(1, [0], ["Shoes"], {}, [True], [""], ["samples/Shoes/0000000.png"])
    plugin.after_samples_filtered(_run(tmp_path, "png"), batch)
    assert not (tmp_path / "samples" / "feed.csv").exists()


def test_a_tiny_ecommerce_run_writes_a_catalogue(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGC_")}
    env["AIGC_HOME"] = str(tmp_path / "home")
    out = tmp_path / "out"
    sets = ["train.steps=2", "train.batch_size=4", "model.width=8", "sample.count=6",
            "data.options.demo_count=24", "output.writer=catalogue", f"output.folder={out}",
            "filters.background-clean=0", "filters.near-duplicate=off",
            "filters.class-consistency=off"]  # fmt: skip
    args = [AIGC_RUN, "scenario", "ecommerce", "--quiet"]
    for s in sets:
        args += ["--set", s]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    rows, lines = _feed(out / "samples")
    assert len(rows) == len(lines) == 6
    assert {r["category"] for r in rows} == set(CATEGORIES)  # index % 6: one of each
    # Each row carries what the run's filters said of that very image: the run's manifest
    # row for the same file, scores included, and background-clean measured on the PNG.
    with (out / "manifest.csv").open(newline="") as f:
        manifest = {r["file"]: r for r in csv.DictReader(f)}
    for row in rows:
        png = out / "samples" / row["file"]
        assert png.is_file()
        assert row["file"].split("/")[0] == row["category"].replace(" ", "_")
        recorded = manifest[f"samples/{row['file']}"]
        assert recorded["accepted"] == "1"
        assert [recorded[k] for k in ("class", "seed", "index")] == [
            row[k] for k in ("category", "seed", "index")
        ]
        assert {k: v for k, v in row.items() if k.startswith("score:")} == {
            k: v for k, v in recorded.items() if k.startswith("score:")
        }
        with Image.open(png) as image:
            rgb = image.convert("RGB")
        pixels = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
        pixels = pixels.view(rgb.height, rgb.width, 3).permute(2, 0, 1)[None]  # 1 x 3 x H x W
        measured = background_clean(pixels / 255).item()
        # The filter saw the image before it was rounded to 8 bits: a few border pixels
        # may fall on the other side of the white level.
        assert abs(float(row["score:background-clean"]) - measured) <= 0.02
    # catalogue-copy (the distance to the nearest training image) differs from image to
    # image, so a row given another image's scores would not match its manifest row.
    assert len({r["score:catalogue-copy"] for r in rows}) == len(rows)
