"""Index tables of a catalogue: a CSV (or TSV), a product feed, or JSON lines.

Each table has one row per image with an image column (a file name or id, or a path
relative to the data folder) and a label column; other columns (colour, brand, price)
are allowed and ignored. Product feeds in the Google Merchant layout (``image_link``,
``product_type`` such as ``Apparel > Shoes > Sneakers``) are read the same way; with
``category_level`` one level of such a path is the label.

Labels are normalised here, once: Unicode NFC, surrounding and repeated whitespace removed,
and spellings that differ only in case merged into the first one seen (``t-shirt`` and
``T-Shirt`` are one class). They are never used as paths: the engine makes its own safe
folder names for the classes.
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aigc_run import DataError

# In order of preference: a feed's "id" is the product's, so it comes last.
IMAGE_COLUMNS = (
    "image", "image_path", "image_file", "image_link", "image_url", "image_id", "file",
    "filename", "file_name", "path", "id",
)  # fmt: skip
LABEL_COLUMNS = (
    "label", "class", "category", "class_name", "labels", "product_type",
    "google_product_category",
)  # fmt: skip
SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson")
PREFERRED = ("images.csv", "labels.csv", "metadata.csv", "index.csv", "feed.csv",
             "products.csv", "images.jsonl", "products.jsonl", "feed.jsonl")  # fmt: skip
REASON_BAD_LINE = "bad JSON line"


@dataclass(frozen=True)
class Table:
    path: Path
    header: list[str]
    rows: list[tuple[str, dict[str, str] | None]]  # (where, row); None for an unreadable line


def is_table(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES


def find_table(root: Path, visible: Any) -> Path | None:
    """The one index table in ``root``, a preferred name among several, else None."""
    found = sorted(p for p in root.iterdir() if is_table(p) and p.is_file() and visible(p.name))
    if len(found) <= 1:
        return found[0] if found else None
    for name in PREFERRED:
        if (root / name) in found:
            return root / name
    raise DataError(
        f"{root} holds several index tables ({', '.join(p.name for p in found[:5])}) "
        "and none is called images.csv",
        "say which one holds the labels: --set data.options.csv=NAME (a .csv or .jsonl)",
    )


def read_table(path: Path) -> Table:
    """Read all rows; a file that cannot be read at all is a DataError."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            if path.suffix.lower() in (".jsonl", ".ndjson"):
                return _read_jsonl(path, f.read().splitlines())
            sample = f.read(8192)
            f.seek(0)
            try:
                dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
            except csv.Error:
                dialect = csv.excel_tab if path.suffix.lower() == ".tsv" else csv.excel
            reader = csv.DictReader(f, dialect=dialect)
            header = [h for h in (reader.fieldnames or []) if h is not None]
            rows: list[tuple[str, dict[str, str] | None]] = [
                (f"{path.name} line {reader.line_num}", row) for row in reader
            ]
            return Table(path, header, rows)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(
            f"cannot read {path}: {e}",
            "save it as UTF-8 with a header row (CSV) or one JSON object per line (JSONL)",
        ) from None


def _read_jsonl(path: Path, lines: list[str]) -> Table:
    header: dict[str, None] = {}
    rows: list[tuple[str, dict[str, str] | None]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path.name} line {number}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            rows.append((where, None))
            continue
        row = {str(k): "" if v is None else str(v) for k, v in value.items()}
        header.update(dict.fromkeys(row))
        rows.append((where, row))
    return Table(path, list(header), rows)


def pick_column(table: Table, wanted: str | None, guesses: Sequence[str], what: str) -> str:
    name = table.path.name
    if wanted is not None:
        if wanted not in table.header:
            raise DataError(
                f"{name} has no column {wanted!r} (columns: {', '.join(table.header)})",
                f"set data.options.{what}_column to one of the columns",
            )
        return wanted
    by_lower = {h.strip().lower(): h for h in table.header}
    for guess in guesses:
        if guess in by_lower:
            return by_lower[guess]
    raise DataError(
        f"{name} has no {what} column (columns: {', '.join(table.header)}; "
        f"looked for {', '.join(guesses)})",
        f"name it with --set data.options.{what}_column=COLUMN",
    )


def clean_label(text: str, level: int | None = None) -> str:
    """NFC, no control characters, single spaces; one level of a ``A > B > C`` path."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(c for c in text if unicodedata.category(c)[0] != "C" or c in "\t ")
    if level is not None and ">" in text:
        parts = [p for p in text.split(">") if p.strip()]
        text = parts[level] if -len(parts) <= level < len(parts) else ""
    return re.sub(r"\s+", " ", text).strip()


class LabelMerger:
    """Spellings that differ only in case become the first spelling seen."""

    def __init__(self) -> None:
        self.first: dict[str, str] = {}

    def __call__(self, label: str) -> str:
        return self.first.setdefault(label.casefold(), label) if label else label
