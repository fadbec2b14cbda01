"""aigc-run serve: the real server in a subprocess, talked to over HTTP."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import aigc_run
from aigc_run.cli import main

AIGC_RUN = str(Path(sys.executable).parent / "aigc-run")
KEY = "s3cret-key"
TINY = [
    "scenario", "medical", "--quiet",
    "--set", "data.options.demo_count=40", "--set", "data.image_size=16",
    "--set", "model.width=8", "--set", "model.latent_dim=8", "--set", "train.steps=4",
    "--set", "train.batch_size=4", "--set", "sample.count=4", "--set", "evaluate.metrics=[]",
    "--set", "filters.intensity-plausibility=1000", "--set", "filters.memorisation=0",
    "--set", "filters.anatomical-plausibility=off", "--set", "filters.realness=-1000",
]  # fmt: skip


@dataclass(frozen=True)
class Server:
    url: str
    export: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A tiny run, exported, served from the export with an API key and max count 8."""
    home = tmp_path_factory.mktemp("serve") / "aigc-home"
    export = tmp_path_factory.mktemp("exports") / "tiny"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIGC_HOME", str(home))
        patch.delenv("AIGC_DATABASE_URL", raising=False)
        for args in (TINY, ["export", "1", "--out", str(export)]):
            result = CliRunner().invoke(main, args)
            assert result.exit_code == 0, result.output
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "AIGC_API_KEY": KEY, "AIGC_THREADS": "2"}  # two batcher threads
    env.pop("OMP_NUM_THREADS", None)
    env["AIGC_HOME"] = str(tmp_path_factory.mktemp("empty"))  # no registry: the export alone
    command = [AIGC_RUN, "serve", str(export), "--port", str(port), "--max-count", "8"]
    command += ["--batch-wait", "300"]  # long enough that requests sent together meet
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if call(url, "GET", "/health")[0] == 200:
                    break
            except OSError:
                assert process.poll() is None, process.communicate()[1]
                time.sleep(0.5)
        yield Server(url, export)
    finally:
        process.terminate()
        process.wait(timeout=30)


def call(
    url: str, method: str, path: str, body: Any = None, key: str | None = KEY
) -> tuple[int, dict[str, str], bytes]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def in_process(server: Server, count: int, seed: int, **options: Any) -> Any:
    return aigc_run.load(server.export, device="cpu").generate(count, seed=seed, **options)


def test_health_is_open_and_every_other_route_needs_the_key(server: Server) -> None:
    status, _, body = call(server.url, "GET", "/health", key=None)
    assert status == 200 and json.loads(body)["status"] == "ok"
    for key in (None, "wrong", KEY + "x"):
        status, headers, body = call(server.url, "GET", "/classes", key=key)
        assert status == 401 and headers.get("www-authenticate") == "Bearer", key
        assert b"Authorization: Bearer" in body
        assert call(server.url, "POST", "/generate", {"count": 1}, key=key)[0] == 401
    status, _, body = call(server.url, "GET", "/classes")
    assert status == 200
    assert json.loads(body) == {"classes": ["lesion", "normal"], "image_size": 16,
                                "max_count": 8, "max_body_bytes": 16384}  # fmt: skip
    assert call(server.url, "GET", "/openapi.json", key=None)[0] == 200


def test_one_image_is_a_png_the_same_as_in_process(server: Server) -> None:
    status, headers, body = call(server.url, "POST", "/generate", {"count": 1, "seed": 11})
    assert status == 200 and headers["content-type"] == "image/png"
    image = np.asarray(Image.open(io.BytesIO(body)))
    want = in_process(server, 1, 11)
    assert np.array_equal(image, want.images[0, :, :, 0])
    assert headers["x-aigc-class"] == want.classes[0]
    assert int(headers["x-aigc-index"]) == want.indices[0]
    assert json.loads(headers["x-aigc-scores"]).keys() == want.scores.keys()


def test_many_images_come_as_json_or_zip_with_their_manifest_fields(server: Server) -> None:
    ask = {"count": 5, "seed": 2, "classes": ["Normal"], "truncation": 0.5}
    status, _, body = call(server.url, "POST", "/generate", ask)
    assert status == 200
    answer = json.loads(body)
    want = in_process(server, 5, 2, classes=["normal"], truncation=0.5)
    assert answer["returned"] == 5 and [r["index"] for r in answer["images"]] == want.indices
    for row, image in zip(answer["images"], want.images, strict=True):
        assert row["class"] == "normal" and row["truncation"] == 0.5 and row["accepted"]
        drawn = np.asarray(Image.open(io.BytesIO(base64.b64decode(row["png"]))))
        assert np.array_equal(drawn, image[:, :, 0])

    status, headers, body = call(server.url, "POST", "/generate", {**ask, "format": "zip"})
    assert status == 200 and headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        names = archive.namelist()
        manifest = archive.read("manifest.csv").decode().splitlines()
    assert len(names) == 6 and len(manifest) == 6
    assert manifest[0].startswith("file,class,seed,index,truncation,accepted,score:")


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"{not json", 422, "Invalid JSON"),
        ({"count": 0}, 422, "count 0: give 1 to 8"),
        ({"count": 9}, 422, "count 9: give 1 to 8"),
        ({"count": 2, "classes": ["cat"]}, 422, "no such class"),
        ({"count": 1, "truncation": 0}, 422, "truncation in (0, 1]"),
        ({"count": 2, "format": "png"}, 422, "for one image"),
        ({"count": "many"}, 422, "count"),
        ({"count": 1, "colour": "red"}, 422, "colour"),
        ({"classes": ["x" * 20_000]}, 413, "over 16384 bytes"),
    ],
)
def test_bad_input_is_a_4xx_that_says_what_was_wrong(
    server: Server, body: Any, status: int, says: str
) -> None:
    got, _, answer = call(server.url, "POST", "/generate", body)
    assert got == status and says in json.loads(answer)["detail"]


def test_concurrent_requests_are_batched_and_each_gets_its_own_images(server: Server) -> None:
    rounds_before = json.loads(call(server.url, "GET", "/health")[2])["rounds"]
    # a client that sends a request and goes away must not stall the rest
    with socket.create_connection(server.url.removeprefix("http://").split(":")) as gone:
        body = json.dumps({"count": 8, "seed": 99}).encode()
        gone.sendall(
            b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
    asks = [{"count": 3, "seed": seed, "format": "json"} for seed in range(16)]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda a: call(server.url, "POST", "/generate", a), asks))
    assert [status for status, _, _ in answers] == [200] * 16
    for ask, (_, _, body) in zip(asks, answers, strict=True):
        rows = json.loads(body)["images"]
        want = in_process(server, 3, ask["seed"])
        assert [r["index"] for r in rows] == want.indices
        drawn = [np.asarray(Image.open(io.BytesIO(base64.b64decode(r["png"])))) for r in rows]
        assert all(np.array_equal(d, w[:, :, 0]) for d, w in zip(drawn, want.images, strict=True))
        # the batch-independent filters scored the whole round at once: the same scores
        for name, scores in want.scores.items():
            served = [r["scores"][name] for r in rows]
            assert np.allclose(served, scores, rtol=1e-5, atol=1e-6), name
    health = json.loads(call(server.url, "GET", "/health")[2])
    assert health["rounds"] - rounds_before < 16, "16 requests at once should share rounds"
    assert health["workers"] == 2, "the rounds ran on two threads at once"
