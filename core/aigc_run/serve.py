"""``aigc-run serve``: a trained model over HTTP (FastAPI on uvicorn; ``pip install
"aigc-run[serve]"``).

    GET  /health     no key needed: {"status": "ok", the model, images and rounds so far,
                     the batcher threads}
    GET  /classes    the class names, the image size and the limits
    POST /generate   {"count", "classes", "seed", "truncation", "filtered", "proportions",
                     "format"}: one PNG, or several as JSON (base64 PNGs) or a ZIP, each
                     with its manifest fields (class, seed, index, truncation, scores)

Requests that arrive together are drawn together: a batcher thread takes every waiting
request (when it was idle, after a WAIT_S pause for more to come; requests that came
during a round are drawn as soon as a thread is free), puts their noise through one
generator call, answers each as ``TrainedModel.generate`` would have, image for image,
and encodes the answers of the requests that round finished. On the CPU there is one
batcher thread per core, each drawing its own rounds on one torch thread
(``rounds_at_once``); the model is loaded once and shared. The event loop never runs the model or
encodes images, so /health answers while a batch is drawn, and a client that goes away
only drops its own answer.

With ``AIGC_API_KEY`` set, every route but /health needs ``Authorization: Bearer <key>``
(compared in constant time); bad input is a 4xx with a message, never a 500.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import hmac
import io
import json
import os
import threading
import time
import zipfile
from collections.abc import Callable
from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aigc_run.api import Draw, Generated, TrainedModel
from aigc_run.contract.errors import AigcError

WAIT_S = 0.005  # how long the worker waits for more requests before it draws (--batch-wait)
MAX_COUNT = 64  # images per request, unless told otherwise
MAX_BODY = 16 * 1024  # bytes of a request body
KEY_VARIABLE = "AIGC_API_KEY"


class GenerateRequest(BaseModel):
    """The body of POST /generate."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(1, description="images to return")
    classes: list[str] = Field([], description="class names (any case); default every class")
    seed: int | None = Field(None, description="default: the run's sample.seed")
    truncation: float = Field(1.0, description="psi in (0, 1]: less variety below 1")
    filtered: bool = Field(True, description="only images that pass the run's filters")
    proportions: Literal["even", "data"] = "even"
    format: Literal["auto", "png", "json", "zip"] = Field(
        "auto", description="auto: a PNG for one image, JSON for several"
    )


Ask = tuple[Draw, Callable[[Generated], Response], "asyncio.Future[Response]"]


class Batcher:
    """Draws every waiting request's next batch in one round, on one of ``workers``
    threads, and encodes the answers of the requests it finished. Each thread goes from
    round to round without waiting for the event loop; it hands each answer to the loop.
    A request stays with the thread that first drew it."""

    def __init__(self, model: TrainedModel, wait: float = WAIT_S, workers: int = 1) -> None:
        self.model = model
        self.wait = wait
        self.waiting: list[Ask] = []
        self.changed = threading.Condition()
        self.closed = False
        self.rounds = self.images = 0
        self.threads = [
            threading.Thread(target=self.serve, name=f"aigc-generate-{k}", daemon=True)
            for k in range(workers)
        ]

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        for t in self.threads:
            t.start()

    def close(self) -> None:
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    async def draw(self, draw: Draw, encode: Callable[[Generated], Response]) -> Response:
        """``draw``'s images, as ``encode`` answers them once they are all drawn."""
        done: asyncio.Future[Response] = self.loop.create_future()
        with self.changed:
            self.waiting.append((draw, encode, done))
            self.changed.notify()
        return await done

    def serve(self) -> None:
        """(The batcher's thread) rounds, for as long as there are requests."""
        active: list[Ask] = []
        while True:
            with self.changed:
                idle = not active and not self.waiting
                if idle:
                    self.changed.wait_for(lambda: self.waiting or self.closed)
                if self.closed:
                    return
            if idle:  # the first request waits for company
                time.sleep(self.wait)
            with self.changed:
                active += self.waiting
                self.waiting = []
            active = [ask for ask in active if not ask[2].done()]  # the client went away
            if not active:
                continue
            wanted = sum(draw.wanted for draw, _, _ in active)
            try:
                answers = self.round(active)
            except Exception as e:  # one bad round fails its requests, not the server
                answers = [e] * len(active)
            with self.changed:
                self.rounds += 1
                self.images += wanted  # drawn, kept or not
            for (_, _, future), answer in zip(active, answers, strict=True):
                if answer is not None:
                    try:
                        self.loop.call_soon_threadsafe(settle, future, answer)
                    except RuntimeError:  # the server stopped during the round
                        return
            active = [ask for ask, answer in zip(active, answers, strict=True) if answer is None]

    def round(self, asks: list[Ask]) -> list[Response | BaseException | None]:
        """One round; the answer of each ask it finished, else None."""
        self.model.draw_round([draw for draw, _, _ in asks])
        answers: list[Response | BaseException | None] = []
        for draw, encode, _ in asks:
            try:
                answers.append(None if draw.wanted else encode(self.model.result(draw)))
            except Exception as e:  # this request's answer failed, not the round
                answers.append(e)
        return answers


def settle(future: asyncio.Future[Response], answer: Response | BaseException) -> None:
    """(On the event loop) give a request its answer, unless it has gone."""
    if future.done():
        return
    if isinstance(answer, BaseException):
        future.set_exception(answer)
    else:
        future.set_result(answer)


def create_app(
    model: TrainedModel, max_count: int = MAX_COUNT, wait: float = WAIT_S, workers: int = 1
) -> FastAPI:
    """The HTTP service for ``model``; the API key is read from AIGC_API_KEY now. ``wait``:
    seconds an idle batcher waits after a request arrives for others to draw with it;
    ``workers``: rounds drawn at once, each on its own thread."""
    key = os.environ.get(KEY_VARIABLE) or None
    state: dict[str, Batcher] = {}

    async def lifespan(app: FastAPI) -> Any:
        batcher = state["batcher"] = Batcher(model, wait, workers)
        batcher.start(asyncio.get_running_loop())
        yield
        batcher.close()

    app = FastAPI(
        title=f"aigc-run: run {model.run_id}",
        description=f"Images from run {model.run_id} (step {model.step}), "
        f"{model.image_size} px, classes {', '.join(model.classes) or 'none'}.",
        lifespan=lifespan,
    )

    def authorised(request: Request) -> None:
        if key is None:
            return
        sent = request.headers.get("authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {key}".encode()):
            raise HTTPException(
                401, "send the API key: Authorization: Bearer <AIGC_API_KEY>",
                headers={"WWW-Authenticate": "Bearer"},
            )  # fmt: skip

    @app.get("/health")
    async def health() -> dict[str, Any]:
        batcher = state["batcher"]
        return {"status": "ok", "run": model.run_id, "step": model.step,
                "rounds": batcher.rounds, "images": batcher.images,
                "workers": len(batcher.threads)}  # fmt: skip

    @app.get("/classes", dependencies=[Depends(authorised)])
    async def classes() -> dict[str, Any]:
        return {"classes": model.classes, "image_size": model.image_size,
                "max_count": max_count, "max_body_bytes": MAX_BODY}  # fmt: skip

    schema = GenerateRequest.model_json_schema()
    body = {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}

    @app.post(
        "/generate",
        dependencies=[Depends(authorised)],
        openapi_extra=body,
        responses={200: {"content": {"image/png": {}, "application/zip": {}}}},
    )
    async def generate(request: Request) -> Response:
        ask = await read_body(request)
        if not 1 <= ask.count <= max_count:
            raise HTTPException(422, f"count {ask.count}: give 1 to {max_count} per request")
        if ask.format == "png" and ask.count != 1:
            raise HTTPException(422, 'format "png" is for one image: use "json" or "zip"')
        try:
            draw = model.start(ask.count, ask.classes, ask.seed, ask.truncation,
                               ask.filtered, ask.proportions)  # fmt: skip
        except AigcError as e:
            raise HTTPException(422, f"{e.message}; {e.hint}" if e.hint else e.message) from None
        return await state["batcher"].draw(draw, lambda drawn: answer(drawn, ask))

    return app


async def read_body(request: Request) -> GenerateRequest:
    """The request's JSON body, read up to MAX_BODY bytes."""
    size = request.headers.get("content-length", "0")
    if not size.isdigit() or int(size) > MAX_BODY:
        raise HTTPException(413, f"the body is over {MAX_BODY} bytes")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY:
            raise HTTPException(413, f"the body is over {MAX_BODY} bytes")
    try:
        return GenerateRequest.model_validate_json(bytes(data) or b"{}")
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'body'}: {err['msg']}" for err in e.errors()
        )
        raise HTTPException(422, problems) from None


def rows(drawn: Generated, psi: float) -> list[dict[str, Any]]:
    """The manifest fields of each image."""
    return [
        {"class": drawn.classes[i], "seed": drawn.seed, "index": drawn.indices[i],
         "truncation": psi, "accepted": bool(drawn.accepted[i]),
         "scores": {name: float(s[i]) for name, s in drawn.scores.items()}}
        for i in range(len(drawn.indices))
    ]  # fmt: skip


def png(image: Any) -> bytes:
    # zlib level 1, not Pillow's 6: on clothing photos 2 to 3.5 times faster to encode at
    # 32 to 256 px, for files 2 to 7% larger; the encoding is on the generator's thread.
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def answer(drawn: Generated, ask: GenerateRequest) -> Response:
    """One PNG (its fields in X-Aigc-* headers), JSON with base64 PNGs, or a ZIP of PNGs
    and manifest.csv. Fewer images than asked when too few passed the filters."""
    fields, images = rows(drawn, ask.truncation), drawn.pil()
    fmt = ask.format if ask.format != "auto" else "png" if ask.count == 1 else "json"
    if fmt == "png" and images:
        head = fields[0]
        headers = {
            "X-Aigc-Class": head["class"],
            "X-Aigc-Seed": str(head["seed"]),
            "X-Aigc-Index": str(head["index"]),
            "X-Aigc-Scores": json.dumps(head["scores"]),
        }
        return Response(png(images[0]), media_type="image/png", headers=headers)
    if fmt == "zip":
        return Response(archive(fields, images), media_type="application/zip")
    for row, image in zip(fields, images, strict=True):
        row["png"] = base64.b64encode(png(image)).decode()
    return JSONResponse({"asked": ask.count, "returned": len(fields), "images": fields})


def archive(fields: list[dict[str, Any]], images: list[Any]) -> bytes:
    """A ZIP of the PNGs and a manifest.csv with their fields."""
    out, table = io.BytesIO(), io.StringIO()
    names = list(fields[0]["scores"]) if fields else []
    writer = csv.writer(table)
    writer.writerow(["file", *MANIFEST, *(f"score:{n}" for n in names)])
    with zipfile.ZipFile(out, "w") as folder:
        for k, (image, row) in enumerate(zip(images, fields, strict=True)):
            file = f"{k:04d}-{row['index']}.png"
            folder.writestr(file, png(image))
            flags = {**row, "accepted": int(row["accepted"])}
            writer.writerow([file, *(flags[c] for c in MANIFEST), *row["scores"].values()])
        folder.writestr("manifest.csv", table.getvalue())
    return out.getvalue()


MANIFEST = ("class", "seed", "index", "truncation", "accepted")


def rounds_at_once(model: TrainedModel) -> int:
    """How many rounds to draw at once: on the CPU one per torch thread, with torch set to
    one thread per round. A round split over threads stalls whenever the HTTP work takes
    one of its cores; whole rounds side by side do not. On a GPU, one at a time."""
    import torch

    if str(model.device).startswith("cuda"):
        return 1
    count = torch.get_num_threads()
    torch.set_num_threads(1)
    return count


def serve(
    model: TrainedModel, host: str, port: int, max_count: int = MAX_COUNT, wait: float = WAIT_S
) -> None:
    """Serve ``model`` until interrupted. On the CPU, as many rounds are drawn at once as
    torch has threads, each on one thread (``rounds_at_once``)."""
    import uvicorn

    app = create_app(model, max_count, wait, rounds_at_once(model))
    uvicorn.run(app, host=host, port=port, log_level="warning")
