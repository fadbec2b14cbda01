"""Product photos from a folder: class subfolders, or a flat folder with an index table.

Layouts, detected in this order:

- **index table**: a ``.csv``/``.tsv``/``.jsonl`` file in the folder (or ``options.csv``)
  with one row per image: an image column (a file name, with or without its extension, or
  a path relative to the folder) and a label column; a product feed (``image_link``,
  ``product_type``) is one too (see ``tables.py``). Images are looked up in ``images/``
  when the folder has one, else in the folder itself (``options.image_dir`` overrides).
  This is the layout of the public clothing dataset: ``images.csv``
  (image,sender_id,label,kids) + ``images/<id>.jpg``. Web addresses are not downloaded:
  they are skipped with a reason.
- **class subfolders**: ``Shoes/a.jpg``, ``Dress/b.png`` (any depth below the class folder);
  the top folder name is the label.
- **flat**: images directly in the folder and no CSV: unlabelled (label ``""``).

Nothing is dropped silently: every file or row that is not loaded is yielded as
``Skipped(item, reason)`` with one of the ``REASON_*`` strings, so the engine can count them.
Names that come from the CSV never become paths unchecked: absolute paths and ``..`` parts
are rejected as ``path outside data folder``, and so is any file whose real location
(symlinks followed) is outside the data folder: a downloaded archive cannot make the loader
read the user's other files. Empty files and images over Pillow's ``MAX_IMAGE_PIXELS``
(decompression bombs, checked from the header before decoding) are skipped with their own
reasons.

Decoding runs on a few threads (PIL releases the GIL while decoding), in input order.
JPEGs are decoded at a reduced scale with ``Image.draft`` (at least twice the training size),
which is what makes thousands of phone photos load in seconds.
"""

from __future__ import annotations

import os
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Any

from PIL import Image, ImageOps
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aigc_ecommerce import tables
from aigc_run import ConfigError, DataError, Sample, Skipped

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
DEFAULT_EXCLUDE_LABELS = ("Not sure", "Other", "Skip")
WHITE = (255, 255, 255)

REASON_UNREADABLE = "unreadable image"
REASON_EMPTY = "empty file"
REASON_TOO_LARGE = "image too large"
REASON_NOT_FILE = "not a regular file"
REASON_EXCLUDED = "excluded label"
REASON_UNKNOWN = "label not in classes"
REASON_OUTSIDE = "path outside data folder"
REASON_MISSING = "file missing"
REASON_NO_ROW = "no row in CSV"
REASON_NO_LABEL = "no label"
REASON_NO_NAME = "no image name"
REASON_DUPLICATE = "duplicate row"
REASON_NOT_IMAGE = "not an image file"
REASON_NOT_IN_CLASS = "not in a class folder"
REASON_OVER_MAX = "over max_per_class"
REASON_REMOTE = "image URL (not downloaded)"

LAYOUT_HINT = (
    "give a folder of class subfolders (Shoes/a.jpg, Dress/b.jpg), or a folder with a CSV, "
    "JSON lines or product feed of image and label columns and the images beside it or in "
    "images/ (see data.options csv, image_column, label_column, image_dir)"
)

#: Errors PIL raises for files it cannot decode: bad headers, truncated data, bombs,
#: malformed EXIF. Each becomes Skipped("unreadable image"), counted and reported (a bomb
#: becomes "image too large" and a zero-byte file "empty file").
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # includes UnidentifiedImageError and "image file is truncated"
    ValueError,
    EOFError,
    SyntaxError,  # some PIL plugins signal a bad header this way
    TypeError,
    IndexError,
    KeyError,
    ZeroDivisionError,
    Image.DecompressionBombError,
)

DECODE_THREADS = max(1, min(4, os.cpu_count() or 1))
WINDOW = 64  # decodes in flight at once: bounds memory, keeps order


@dataclass(frozen=True)
class FolderOptions:
    csv: str | None = None
    image_column: str | None = None
    label_column: str | None = None
    image_dir: str | None = None
    exclude_labels: frozenset[str] = frozenset(DEFAULT_EXCLUDE_LABELS)
    max_per_class: int | None = None
    category_level: int | None = None  # one level of a feed's "A > B > C" category
    classes: frozenset[str] | None = None  # casefolded; None keeps every label

    def refuse(self, label: str) -> str:
        """The reason a (normalised) label is left out, or "" when it is kept."""
        key = label.casefold()
        if key in {x.casefold() for x in self.exclude_labels}:
            return REASON_EXCLUDED
        if self.classes is not None and key not in self.classes:
            return REASON_UNKNOWN
        return ""


class _OptionsSchema(BaseModel):
    """``data.options`` for a folder of photos, as a scenario writes them (strict types:
    a string where a list belongs is an error, not a list of letters)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    csv: str | None = None
    image_column: str | None = None
    label_column: str | None = None
    image_dir: str | None = None
    exclude_labels: list[str] = Field(default_factory=lambda: list(DEFAULT_EXCLUDE_LABELS))
    max_per_class: Annotated[int, Field(ge=1)] | None = None
    category_level: int | None = None
    classes: Annotated[list[str], Field(min_length=1)] | None = None


#: What to do about a bad value, by option.
_HINTS = {
    "classes": 'e.g. classes = ["Shoes", "Pants"]; leave it out to keep every label',
    "exclude_labels": 'e.g. exclude_labels = ["Other"], or [] to keep every label',
    "category_level": "0 is the top level of 'Apparel > Shoes > Sneakers', -1 the last",
    "max_per_class": "an integer >= 1, e.g. max_per_class = 500",
}


def parse_options(options: Mapping[str, Any], known_extra: Iterable[str] = ()) -> FolderOptions:
    """Check ``data.options`` for the folder loader; a wrong one is a ConfigError with its path.

    ``known_extra`` are options another part of the source reads (the demo's demo_count).
    """
    extra = set(known_extra)
    try:
        checked = _OptionsSchema.model_validate(
            {k: v for k, v in options.items() if k not in extra}
        )
    except ValidationError as e:
        problem = e.errors()[0]
        key = str(problem["loc"][0])
        if problem["type"] == "extra_forbidden":
            known = sorted(set(_OptionsSchema.model_fields) | extra)
            raise ConfigError(
                f"data.options: unknown option {key!r} for the dataset source 'products'",
                f"the options are: {', '.join(known)}",
            ) from None
        raise ConfigError(
            f"data.options.{key}: {problem['msg'].lower()} (got {options[key]!r})",
            _HINTS.get(key, "see the options in the scenario file's comments"),
        ) from None
    return FolderOptions(
        csv=checked.csv,
        image_column=checked.image_column,
        label_column=checked.label_column,
        image_dir=checked.image_dir,
        exclude_labels=frozenset(tables.clean_label(x) for x in checked.exclude_labels),
        max_per_class=checked.max_per_class,
        category_level=checked.category_level,
        classes=None
        if checked.classes is None
        else frozenset(tables.clean_label(x).casefold() for x in checked.classes),
    )


# ---------------------------------------------------------------------------------------
# decoding one image
# ---------------------------------------------------------------------------------------


def open_image(path: Path, min_side: int) -> Image.Image:
    """Decode ``path`` upright, as RGB, at least ``min_side`` on its shorter side when it is
    that large (JPEGs are decoded at reduced scale). Raises one of ``DECODE_ERRORS``."""
    with Image.open(path) as im:
        if im.format == "JPEG" and min_side > 0:
            im.draft(None, (min_side, min_side))  # scale only; the mode is converted below
        refuse_bomb(im)
        upright = ImageOps.exif_transpose(im)  # a fully loaded copy, orientation applied
    return to_rgb(upright)


def refuse_bomb(im: Image.Image) -> None:
    """Raise DecompressionBombError for an image (as it will be decoded, after ``draft``) over
    ``MAX_IMAGE_PIXELS``. Pillow itself only warns up to twice that limit, and each of the
    decoding threads could then hold half a gigabyte."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and im.width * im.height > limit:
        raise Image.DecompressionBombError(f"{im.width} x {im.height} pixels")


def to_rgb(im: Image.Image) -> Image.Image:
    """RGB, with anything transparent composited onto white (the catalogue background)."""
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*WHITE, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):  # 16-bit or float greyscale
        im = _to_8bit(im)
    return im if im.mode == "RGB" else im.convert("RGB")


def _to_8bit(im: Image.Image) -> Image.Image:
    import numpy as np

    a = np.asarray(im, dtype=np.float64)
    hi = float(a.max()) if a.size else 0.0
    scale = 255.0 / hi if hi > 255 else 1.0  # stretch down only when it exceeds 8 bits
    return Image.fromarray(np.clip(a * scale, 0, 255).astype(np.uint8), "L")


# ---------------------------------------------------------------------------------------
# planning: which files, which labels
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One input in order: a file to decode with its label, or an input already skipped."""

    item: str
    label: str = ""
    path: Path | None = None
    skipped: str = ""  # a REASON_* when nothing is to be decoded


def _visible(name: str) -> bool:
    return not name.startswith(".") and name not in ("__MACOSX", "Thumbs.db", "desktop.ini")


def _is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


def _describe_folder(root: Path) -> str:
    try:
        entries = [e for e in os.scandir(root) if _visible(e.name)]
    except OSError as e:
        return f"it cannot be listed ({e.strerror})"
    dirs = sorted(e.name for e in entries if e.is_dir())
    files = sorted(e.name for e in entries if not e.is_dir())
    images = [f for f in files if _is_image_name(f)]
    others = sorted({Path(f).suffix.lower() or f for f in files if not _is_image_name(f)})
    if not entries:
        return "it is empty"
    parts = [f"{len(images)} image file(s)", f"{len(dirs)} subfolder(s)"]
    if others:
        parts.append(f"other files: {', '.join(others[:6])}")
    return "found " + ", ".join(parts)


def plan(root: Path, opts: FolderOptions) -> tuple[Path, str, list[Job]]:
    """Detect the layout of ``root`` and list its inputs in a stable order.

    Returns the data folder (the CSV's folder when ``root`` is a CSV file), the layout's name
    and the jobs; raises DataError when nothing could be used.
    """
    if not root.exists():
        raise DataError(f"data folder not found: {root}", "check --data / data.path")
    csv_path: Path | None = None
    if root.is_file():
        if not tables.is_table(root):
            raise DataError(f"{root} is a file, not a data folder", LAYOUT_HINT)
        root, csv_path = root.parent, root
    elif opts.csv is not None:
        csv_path = root / opts.csv
        if not csv_path.is_file():
            raise DataError(f"data.options.csv: {csv_path} not found", "check the file name")
    else:
        csv_path = tables.find_table(root, _visible)

    if csv_path is not None:
        jobs = _plan_csv(root, csv_path, opts)
        layout = f"table {csv_path.name}"
    else:
        jobs, layout = _plan_tree(root, opts)
    # the folder the user named for the images counts as inside, wherever it points
    named = (root,) if opts.image_dir is None else (root, root / opts.image_dir)
    allowed = tuple(folder.resolve() for folder in named)
    jobs = [_safe_to_read(job, allowed) for job in jobs]
    if not any(job.path is not None for job in jobs):
        reasons = Counter(job.skipped for job in jobs)
        found = (
            "; ".join(f"{n} {reason}" for reason, n in reasons.most_common())
            if reasons
            else _describe_folder(root)
        )
        raise DataError(f"no usable image in {root} (layout: {layout}): {found}", LAYOUT_HINT)
    return root, layout, jobs


def _safe_to_read(job: Job, real_folders: tuple[Path, ...]) -> Job:
    """The job, or a skip when its file really lives outside the data folder (a symlink
    pointing elsewhere, or a class folder linked from another disk) or is not a regular
    file (reading a named pipe or a device would never end)."""
    if job.path is None:
        return job
    real = job.path.resolve()
    if not any(real.is_relative_to(folder) for folder in real_folders):
        return Job(job.item, job.label, skipped=REASON_OUTSIDE)
    if not real.is_file():
        return Job(job.item, job.label, skipped=REASON_NOT_FILE)
    return job


def _unsafe(value: str) -> bool:
    """A CSV value that could point outside the data folder: absolute, a drive, or ``..``."""
    for pure in (PurePosixPath(value), PureWindowsPath(value)):
        if pure.is_absolute() or pure.drive or pure.root or ".." in pure.parts:
            return True
    return False


def _plan_csv(root: Path, csv_path: Path, opts: FolderOptions) -> list[Job]:
    if opts.image_dir is not None:
        image_dir = root / opts.image_dir
        if not image_dir.is_dir():
            raise DataError(
                f"data.options.image_dir: {image_dir} is not a folder",
                "check the folder name, relative to the data folder",
            )
    else:
        image_dir = root / "images" if (root / "images").is_dir() else root

    # the image files beside the CSV, by name and by stem (CSV ids often omit the extension)
    by_name: dict[str, str] = {}
    by_stem: dict[str, str] = {}
    for name in sorted(os.listdir(image_dir)):
        if _visible(name) and _is_image_name(name) and (image_dir / name).is_file():
            by_name[name] = name
            by_stem.setdefault(Path(name).stem, name)

    table = tables.read_table(csv_path)
    image_col = tables.pick_column(table, opts.image_column, tables.IMAGE_COLUMNS, "image")
    label_col = tables.pick_column(table, opts.label_column, tables.LABEL_COLUMNS, "label")
    merge = tables.LabelMerger()

    prefix = image_dir.relative_to(root).as_posix() if image_dir != root else ""
    used: set[Path] = set()
    jobs: list[Job] = []
    for where, row in table.rows:
        if row is None:
            jobs.append(Job(where, skipped=tables.REASON_BAD_LINE))
            continue
        value = (row.get(image_col) or "").strip()
        label = merge(tables.clean_label(row.get(label_col) or "", opts.category_level))
        if not value:
            jobs.append(Job(where, label, skipped=REASON_NO_NAME))
            continue
        item = f"{where}: {value}"
        if not label:
            jobs.append(Job(item, skipped=REASON_NO_LABEL))
        elif opts.refuse(label):
            jobs.append(Job(item, label, skipped=opts.refuse(label)))
        elif "://" in value:  # a feed's web address: this loader reads local files only
            jobs.append(Job(item, label, skipped=REASON_REMOTE))
        elif _unsafe(value):
            jobs.append(Job(item, label, skipped=REASON_OUTSIDE))
        else:
            path = _lookup(root, image_dir, value, by_name, by_stem)
            if path is None:
                jobs.append(Job(item, label, skipped=REASON_MISSING))
            elif path in used:
                jobs.append(Job(item, label, skipped=REASON_DUPLICATE))
            else:
                used.add(path)
                jobs.append(Job(path.relative_to(root).as_posix(), label, path))
    # image files no row mentions (excluded rows count as mentions): counted, not dropped
    listed = {p.name for p in used if p.parent == image_dir}
    for _, row in table.rows:
        name = ((row or {}).get(image_col) or "").strip()
        listed.add(by_name.get(name) or by_stem.get(name) or PurePosixPath(name).name)
    for name in by_name:
        if name not in listed:
            jobs.append(Job(f"{prefix}/{name}" if prefix else name, skipped=REASON_NO_ROW))
    return jobs


def _lookup(
    root: Path, image_dir: Path, value: str, by_name: Mapping[str, str], by_stem: Mapping[str, str]
) -> Path | None:
    if value in by_name:
        return image_dir / by_name[value]
    if value in by_stem:
        return image_dir / by_stem[value]
    for base in (image_dir, root):  # a relative path: "images/a.jpg" or "sub/a.jpg"
        candidate = base / value
        if candidate.is_file():
            return candidate
    return None


def _plan_tree(root: Path, opts: FolderOptions) -> tuple[list[Job], str]:
    entries = sorted((e for e in os.scandir(root) if _visible(e.name)), key=lambda e: e.name)
    class_dirs = [e for e in entries if e.is_dir()]
    loose = [e for e in entries if not e.is_dir()]
    jobs: list[Job] = []
    if not class_dirs:  # flat: unlabelled images
        for e in loose:
            ok = _is_image_name(e.name)
            jobs.append(
                Job(e.name, "", Path(e.path) if ok else None, "" if ok else REASON_NOT_IMAGE)
            )
        return jobs, "flat folder (unlabelled)"
    for e in loose:
        jobs.append(
            Job(e.name, skipped=REASON_NOT_IN_CLASS if _is_image_name(e.name) else REASON_NOT_IMAGE)
        )
    merge = tables.LabelMerger()
    for d in class_dirs:
        label = merge(tables.clean_label(d.name))
        for dirpath, dirnames, filenames in os.walk(d.path):
            dirnames[:] = sorted(n for n in dirnames if _visible(n))
            for name in sorted(n for n in filenames if _visible(n)):
                path = Path(dirpath) / name
                item = path.relative_to(root).as_posix()
                if not _is_image_name(name):
                    jobs.append(Job(item, label, skipped=REASON_NOT_IMAGE))
                elif opts.refuse(label):
                    jobs.append(Job(item, label, skipped=opts.refuse(label)))
                else:
                    jobs.append(Job(item, label, path))
    return jobs, "class subfolders"


# ---------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------


def _decode(path: Path, min_side: int) -> Image.Image | str:
    """The image, or the reason it is skipped."""
    try:
        return open_image(path, min_side)
    except Image.DecompressionBombError:
        return REASON_TOO_LARGE
    except DECODE_ERRORS:
        try:
            return REASON_EMPTY if path.stat().st_size == 0 else REASON_UNREADABLE
        except OSError:
            return REASON_UNREADABLE


def load_folder(
    root: Path, options: Mapping[str, Any], image_size: int, known_extra: Iterable[str] = ()
) -> Iterator[Sample | Skipped]:
    """Check the folder and plan now (errors surface at the call); decode lazily, in order."""
    opts = parse_options(options, known_extra)
    root, layout, jobs = plan(root, opts)
    return _decode_all(root, layout, jobs, opts, max(2 * image_size, 1))


def _decode_all(
    root: Path, layout: str, jobs: list[Job], opts: FolderOptions, min_side: int
) -> Iterator[Sample | Skipped]:
    cap = opts.max_per_class
    taken: Counter[str] = Counter()
    pending: deque[tuple[Job, Future[Image.Image | str] | None]] = deque()
    reasons: Counter[str] = Counter()
    loaded = 0
    pool = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="aigc-ecommerce-decode")
    try:
        queue = iter(jobs)
        exhausted = False
        while pending or not exhausted:
            while not exhausted and len(pending) < WINDOW:
                job = next(queue, None)
                if job is None:
                    exhausted = True
                elif job.path is None or (cap is not None and taken[job.label] >= cap):
                    pending.append((job, None))
                else:
                    pending.append((job, pool.submit(_decode, job.path, min_side)))
            if not pending:
                break
            job, future = pending.popleft()
            if future is None:
                reason = job.skipped or REASON_OVER_MAX
            else:
                image = future.result()
                if isinstance(image, str):
                    reason = image
                elif cap is not None and taken[job.label] >= cap:
                    reason = REASON_OVER_MAX
                else:
                    taken[job.label] += 1
                    loaded += 1
                    yield Sample(image, job.label)
                    continue
            reasons[reason] += 1
            yield Skipped(job.item, reason)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if loaded == 0:
        found = "; ".join(f"{n} {reason}" for reason, n in reasons.most_common())
        raise DataError(f"no usable image in {root} (layout: {layout}): {found}", LAYOUT_HINT)
