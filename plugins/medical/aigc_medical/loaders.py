"""The ``scans`` dataset source: phantoms, MedMNIST-style ``.npz`` files, or image folders.

``load(request)`` checks the path at once (a missing path or a broken file raises
``DataError`` before anything is yielded) and returns an iterator of ``Sample`` and
``Skipped`` items:

- ``request.path`` is None: procedural phantom chest scans (``phantoms.py``);
- a ``.npz`` file in the MedMNIST layout (``train_images``, ``train_labels``, ...);
- a folder of PNG/JPEG/TIFF, DICOM and NIfTI scans, in class subfolders (``normal/x.png``)
  or flat; or a single DICOM file (every frame) or NIfTI volume (its slices).
"""

from __future__ import annotations

import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
from PIL import Image, ImageOps

from aigc_medical import dicom, nifti, reasons
from aigc_medical.phantoms import phantoms
from aigc_run import DataError, DataRequest, Sample, Skipped

Item: TypeAlias = Sample | Skipped

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff"})
LAYOUT_HINT = (
    "give a MedMNIST-style .npz (train_images N x H x W uint8, train_labels N x 1), "
    "a DICOM or NIfTI file, a folder of PNG/JPEG/DICOM/NIfTI scans in class subfolders "
    "(normal/x.png), or a flat folder of scans (unlabelled)"
)
NPZ_HINT = (
    "expected the MedMNIST layout: <split>_images uint8 of shape N x H x W or N x H x W x C "
    "(C = 1 or 3) and <split>_labels integers of shape N or N x 1, "
    f"for the splits {', '.join(SPLITS)}"
)

# Class names of the 2D MedMNIST v2 sets, in label order, made short enough for folder
# names. ChestMNIST is multi-label and has no single class per image, so it is not here.
MEDMNIST_CLASSES: dict[str, tuple[str, ...]] = {
    "pneumoniamnist": ("normal", "pneumonia"),
    "breastmnist": ("malignant", "normal-or-benign"),
    "octmnist": ("choroidal-neovascularization", "diabetic-macular-edema", "drusen", "normal"),
    "retinamnist": ("no-retinopathy", "mild-npdr", "moderate-npdr", "severe-npdr", "pdr"),
    "pathmnist": (
        "adipose", "background", "debris", "lymphocytes", "mucus", "smooth-muscle",
        "normal-colon-mucosa", "cancer-associated-stroma", "colorectal-adenocarcinoma",
    ),
    "dermamnist": (
        "actinic-keratoses", "basal-cell-carcinoma", "benign-keratosis", "dermatofibroma",
        "melanoma", "melanocytic-nevi", "vascular-lesions",
    ),
    "bloodmnist": (
        "basophil", "eosinophil", "erythroblast", "immature-granulocytes", "lymphocyte",
        "monocyte", "neutrophil", "platelet",
    ),
    "tissuemnist": (
        "collecting-duct", "distal-convoluted-tubule", "glomerular-endothelial",
        "interstitial-endothelial", "leukocytes", "podocytes", "proximal-tubule",
        "thick-ascending-limb",
    ),
    **{
        name: (
            "bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right",
            "liver", "lung-left", "lung-right", "pancreas", "spleen",
        )
        for name in ("organamnist", "organcmnist", "organsmnist")
    },
}  # fmt: skip


def load(request: DataRequest) -> Iterator[Item]:
    """The ``scans`` source's loader: dispatch on what ``request.path`` is."""
    if request.path is None:
        return _load_phantoms(request)
    path = Path(request.path)
    if not path.exists():
        raise DataError(f"data path does not exist: {path}", LAYOUT_HINT)
    if path.is_dir():
        return load_folder(path, request.image_size, request.options)
    if not path.is_file():  # a named pipe or a device: reading it would never end
        raise DataError(f"{path} is not a regular file or a folder", LAYOUT_HINT)
    if path.suffix.lower() == ".npz":
        return load_npz(path, request.options)
    if dicom.is_dicom(path) or nifti.is_nifti(path):
        return load_file(path, request.image_size, request.options)
    raise DataError(f"{path} is not a folder, an .npz, a DICOM or a NIfTI file", LAYOUT_HINT)


# ---------------------------------------------------------------------------------------
# built-in phantoms
# ---------------------------------------------------------------------------------------


def _load_phantoms(request: DataRequest) -> Iterator[Item]:
    count = _int_option(request.options, "demo_count", 3000, minimum=1)
    size = _int_option(request.options, "phantom_size", 64, minimum=16)
    return (Sample(image, label) for image, label in phantoms(request.seed, count, size))


def _int_option(options: Mapping[str, Any], key: str, default: int, minimum: int) -> int:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DataError(
            f"data.options.{key} must be a whole number >= {minimum} (got {value!r})",
            f"set e.g. --set data.options.{key}={default}",
        )
    return value


# ---------------------------------------------------------------------------------------
# MedMNIST-style .npz
# ---------------------------------------------------------------------------------------


def load_npz(path: Path, options: Mapping[str, Any]) -> Iterator[Item]:
    """Check a MedMNIST-style .npz completely, then return an iterator over its images.

    Options: ``split`` (train | val | test | all, default train) and ``class_names`` (a list
    in label order; default: the MedMNIST table for a recognised file name, else "0", "1", ...).
    """
    split = options.get("split", "train")
    if split not in (*SPLITS, "all"):
        raise DataError(
            f"data.options.split must be one of train, val, test, all (got {split!r})",
            "set e.g. --set data.options.split=train",
        )
    try:
        with path.open("rb") as f:
            magic = f.read(6)
        if magic == b"\x93NUMPY":
            raise DataError(f"{path} holds a single array (.npy), not an .npz archive", NPZ_HINT)
        if not magic.startswith(b"PK"):
            raise DataError(f"{path} is not a readable .npz file: not a zip archive", NPZ_HINT)
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path} is not a readable .npz file: {e}", NPZ_HINT) from None
    if not isinstance(npz, np.lib.npyio.NpzFile):  # np.load decides by content, not name
        raise DataError(f"{path} is not an .npz archive", NPZ_HINT)
    with npz:
        found = sorted(npz.files)
        wanted = list(SPLITS) if split == "all" else [split]
        present = [s for s in wanted if f"{s}_images" in found and f"{s}_labels" in found]
        if not present:
            expected = [f"{s}_{part}" for s in wanted for part in ("images", "labels")]
            raise DataError(
                f"{path} has the keys {', '.join(found) or '(none)'}, but "
                + (
                    f"the split {split!r} needs {' and '.join(expected)}"
                    if split != "all"
                    else "split 'all' needs the images and labels of at least one split: "
                    + ", ".join(expected)
                ),
                NPZ_HINT,
            )
        try:
            arrays = [(s, npz[f"{s}_images"], npz[f"{s}_labels"]) for s in present]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            # A member that is not a plain array (pickled objects) or a damaged member.
            raise DataError(f"{path} has an array that cannot be read: {e}", NPZ_HINT) from None

    checked = [(s, *_check_split(path, s, images, labels)) for s, images, labels in arrays]
    top = max(int(labels.max(initial=-1)) for _, _, labels in checked)
    names = _class_names(path, options, top)
    return _iter_npz(checked, names)


def _check_split(
    path: Path, split: str, images: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    where = f"{path}: {split}_images"
    if images.dtype != np.uint8:
        raise DataError(f"{where} has dtype {images.dtype}, expected uint8", NPZ_HINT)
    ok_shape = images.ndim == 3 or (images.ndim == 4 and images.shape[3] in (1, 3))
    if not ok_shape or images.shape[0] == 0:
        raise DataError(f"{where} has shape {images.shape}, expected N x H x W (x C)", NPZ_HINT)
    where = f"{path}: {split}_labels"
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{where} has dtype {labels.dtype}, expected integers", NPZ_HINT)
    if labels.ndim == 2 and labels.shape[1] > 1:
        raise DataError(
            f"{where} has shape {labels.shape}: several labels per image (multi-label)",
            "aigc-run trains on one class per image; pass a file with N x 1 labels",
        )
    labels = labels.reshape(-1) if labels.ndim in (1, 2) else labels
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(
            f"{where} has shape {labels.shape} for {len(images)} images, expected N or N x 1",
            NPZ_HINT,
        )
    if labels.min() < 0:
        raise DataError(f"{where} has negative labels", NPZ_HINT)
    return images, labels.astype(np.int64)


def _class_names(path: Path, options: Mapping[str, Any], top: int) -> Sequence[str]:
    given = options.get("class_names")
    if given is not None:
        if not isinstance(given, list | tuple) or not all(isinstance(n, str) for n in given):
            raise DataError(
                f"data.options.class_names must be a list of strings (got {given!r})",
                'set e.g. data.options.class_names = ["normal", "pneumonia"] in the scenario',
            )
        if top >= len(given):
            raise DataError(
                f"{path} has labels up to {top}, but data.options.class_names names only "
                f"{len(given)} classes",
                "give one name per label, in label order",
            )
        return list(given)
    match = re.match(r"[a-z]+mnist", path.stem.lower())
    known = MEDMNIST_CLASSES.get(match.group(0)) if match else None
    if known is not None and top < len(known):
        return known
    return [str(i) for i in range(top + 1)]


def _iter_npz(
    checked: Sequence[tuple[str, np.ndarray, np.ndarray]], names: Sequence[str]
) -> Iterator[Item]:
    for _, images, labels in checked:
        for image, label in zip(images, labels, strict=True):
            if image.ndim == 3 and image.shape[2] == 1:
                image = image[:, :, 0]
            # A copy, so the image does not share (and keep alive) the whole split's memory.
            yield Sample(Image.fromarray(image.copy()), names[int(label)])


# ---------------------------------------------------------------------------------------
# folders of scans, and single DICOM / NIfTI files
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadOptions:
    """How DICOM and NIfTI files are turned into 8-bit slices (checked before any read)."""

    window: str | tuple[float, float] = "file"
    axis: int = 2
    percentiles: tuple[float, float] = nifti.DEFAULT_PERCENTILES
    min_foreground: float = nifti.DEFAULT_MIN_FOREGROUND
    class_folders: bool = True

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> ReadOptions:
        axis, percentiles, share = nifti.check_options(options)
        class_folders = options.get("class_folders", True)
        if not isinstance(class_folders, bool):
            raise DataError(
                f"data.options.class_folders must be true or false (got {class_folders!r})",
                "false loads a nested folder (patient/study/series) unlabelled",
            )
        window = dicom.check_window(options.get("window", "file"))
        return cls(window, axis, percentiles, share, class_folders)


def load_file(path: Path, image_size: int, options: Mapping[str, Any]) -> Iterator[Item]:
    """One DICOM file (all its frames) or one NIfTI volume (its slices), unlabelled."""
    read = ReadOptions.parse(options)
    return _iter_folder(path.parent, [path], False, image_size, read)


def load_folder(
    folder: Path, image_size: int = 0, options: Mapping[str, Any] | None = None
) -> Iterator[Item]:
    """Find the scans in ``folder`` at once, then return an iterator that decodes them.

    Scans are PNG/JPEG/TIFF images, DICOM files (``.dcm`` or no extension with the DICM
    marker; ordered by series and instance number) and NIfTI volumes (``.nii``,
    ``.nii.gz``). With class subfolders (``normal/a.png``, ``lesion/b.dcm``; scans may sit
    deeper) each scan is labelled by its top subfolder and scans directly in ``folder`` are
    skipped; without subfolders, or with ``class_folders = false``, every scan is
    unlabelled (``""``). Hidden files and files with other extensions are ignored; a file
    whose real location (symlinks followed) is outside ``folder`` is skipped.
    """
    read = ReadOptions.parse(options or {})
    files = _scan_files(folder)
    if not files:
        raise DataError(f"no PNG/JPEG/TIFF, DICOM or NIfTI scans found in {folder}", LAYOUT_HINT)
    # named pipes and devices first: they are skipped unread (reading them never ends)
    special = [f for f in files if not f.is_file()]
    regular = [f for f in files if f.is_file()]
    images = [f for f in regular if not dicom.is_dicom(f)]
    ordered = special + images + dicom.series_order([f for f in regular if dicom.is_dicom(f)])
    labelled = read.class_folders and any(f.parent != folder for f in files)
    return _iter_folder(folder, ordered, labelled, image_size, read, confined=True)


def _scan_files(folder: Path) -> list[Path]:
    found = []
    for f in sorted(folder.rglob("*")):
        relative = f.relative_to(folder).parts
        if any(part.startswith(".") for part in relative) or f.is_dir():
            continue
        named = f.suffix.lower() in IMAGE_SUFFIXES or nifti.is_nifti(f) or dicom.is_dicom(f)
        if named and f.exists():  # not a broken link; named pipes are listed, to be counted
            found.append(f)
    return found


def _iter_folder(
    folder: Path,
    files: Sequence[Path],
    labelled: bool,
    size: int,
    read: ReadOptions,
    confined: bool = False,
) -> Iterator[Item]:
    usable = 0
    skipped: Counter[str] = Counter()
    real_folder = folder.resolve()
    for f in files:
        name = f.relative_to(folder).as_posix()
        items: Iterable[Item]
        if confined and not f.resolve().is_relative_to(real_folder):
            # a downloaded archive's symlink must not make us read the user's other files
            items = [Skipped(name, reasons.OUTSIDE)]
        elif not f.is_file():
            items = [Skipped(name, reasons.NOT_FILE)]
        elif labelled and f.parent == folder:
            items = [Skipped(name, "outside a class folder")]
        else:
            label = f.relative_to(folder).parts[0] if labelled else ""
            items = _read_any(f, name, label, size, read)
        for item in items:
            if isinstance(item, Sample):
                usable += 1
            else:
                skipped[item.reason] += 1
            yield item
    if usable == 0:
        found = "; ".join(f"{n} {reason}" for reason, n in skipped.most_common())
        raise DataError(
            f"none of the {len(files)} scans in {folder} could be used ({found})", LAYOUT_HINT
        )


def _read_any(path: Path, name: str, label: str, size: int, read: ReadOptions) -> Iterator[Item]:
    """The images of one file: one for a PNG, one per frame or slice for DICOM and NIfTI."""
    if nifti.is_nifti(path):
        try:
            for index, image in nifti.read_slices(
                path, read.axis, read.percentiles, read.min_foreground
            ):
                if image is None:
                    yield Skipped(f"{name} slice {index}", "empty slice")
                else:
                    yield Sample(image, label)
        except ValueError as e:
            yield Skipped(name, _reason(path, e))
        return
    if dicom.is_dicom(path):
        try:
            frames = list(dicom.read_frames(path, read.window))
        except ValueError as e:
            yield Skipped(name, _reason(path, e))
            return
        yield from (Sample(frame, label) for frame in frames)
        return
    image = read_scan(path, size)
    yield Skipped(name, image) if isinstance(image, str) else Sample(image, label)


def _reason(path: Path, error: Exception) -> str:
    """The counted reason for a file that gave no image."""
    if isinstance(error, reasons.Unusable):
        return error.reason
    if isinstance(error, Image.DecompressionBombError):
        return reasons.TOO_LARGE
    try:
        return reasons.EMPTY if path.stat().st_size == 0 else reasons.UNREADABLE
    except OSError:
        return reasons.UNREADABLE


def read_scan(path: Path, size: int = 0) -> Image.Image | str:
    """Decode one scan to an 8-bit grayscale image, or give the reason it cannot be read.

    16-bit and 32-bit scans are stretched from their own minimum to their own maximum, not
    clipped at 255 (which would turn most X-rays white). Images over Pillow's
    ``MAX_IMAGE_PIXELS`` (as decoded: JPEGs at reduced scale) are refused from the header:
    Pillow itself only warns below twice that.
    """
    try:
        with Image.open(path) as opened:
            if size and opened.format == "JPEG":
                opened.draft("L", (size, size))  # decode at a fraction of the size: faster
            limit = Image.MAX_IMAGE_PIXELS
            if limit is not None and opened.width * opened.height > limit:
                return reasons.TOO_LARGE
            opened.load()
            image = ImageOps.exif_transpose(opened)
            if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
                return _stretch_to_8bit(np.asarray(image, dtype=np.float64))
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                # transparent parts are background, and a scan's background is black
                return Image.alpha_composite(
                    Image.new("RGBA", image.size, (0, 0, 0, 255)), image.convert("RGBA")
                ).convert("L")
            return image.convert("L")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        # OSError covers UnidentifiedImageError and truncated files; a few decoders raise
        # ValueError or SyntaxError on a malformed header.
        return _reason(path, e)


def _stretch_to_8bit(values: np.ndarray) -> Image.Image:
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) * 255.0 if high > low else np.zeros_like(values)
    return Image.fromarray((scaled + 0.5).astype(np.uint8))
