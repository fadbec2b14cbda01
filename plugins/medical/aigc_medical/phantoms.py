"""Procedural phantom chest scans: the built-in demo data of the ``scans`` source.

Each image is a synthetic frontal chest X-ray drawn from ellipses: soft tissue of the
thorax, two dark lung fields cut below by the diaphragm domes, a bright mediastinum with
the spine and the heart, clavicles, and faint ribs across the lungs. Every anatomy
parameter, the exposure and the noise vary per image. Class ``"lesion"`` adds one to three
bright opacities inside a lung field; class ``"normal"`` has none.

They are synthetic, not real patients: good for a demo and for tests, useless for
medicine. Image ``i`` depends only on ``(seed, i)``, so the set is the same on every
machine and a longer set starts with the shorter one.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageFilter

CLASSES = ("normal", "lesion")


class _Canvas:
    """Pixel coordinates in [-1, 1] (x to the right, y down) with an affine jitter."""

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        # Sample the centre of each pixel; y grows downwards as in the image.
        axis = (np.arange(size) + 0.5) / size * 2.0 - 1.0
        x, y = np.meshgrid(axis, axis)
        angle = rng.normal(0.0, 0.05)  # radians: patients are not perfectly straight
        scale = rng.uniform(0.92, 1.08)
        dx, dy = rng.normal(0.0, 0.04, size=2)
        cos, sin = np.cos(angle), np.sin(angle)
        self.x = (cos * (x - dx) + sin * (y - dy)) / scale
        self.y = (-sin * (x - dx) + cos * (y - dy)) / scale
        self.soft = 1.5 / size  # edge width: anti-aliased shapes at any size

    def ellipse(
        self, cx: float, cy: float, ax: float, ay: float, tilt: float = 0.0, taper: float = 0.0
    ) -> np.ndarray:
        """A soft mask in [0, 1]: 1 inside the ellipse, 0 outside, smooth across the edge.

        ``taper`` > 0 narrows the top and widens the bottom (a lung's apex and base).
        """
        cos, sin = np.cos(tilt), np.sin(tilt)
        v = (-sin * (self.x - cx) + cos * (self.y - cy)) / ay
        width = ax * (1.0 + taper * np.clip(v, -1.0, 1.0))
        u = (cos * (self.x - cx) + sin * (self.y - cy)) / width
        r = np.sqrt(u * u + v * v)
        # Distance from the edge, roughly in canvas units, through a smooth step.
        edge = (1.0 - r) * min(ax, ay) / self.soft
        return 1.0 / (1.0 + np.exp(-np.clip(edge, -30.0, 30.0)))


def _paint(img: np.ndarray, mask: np.ndarray, value: float) -> None:
    """Lay ``value`` over ``img`` where ``mask`` is 1 (alpha blending in place)."""
    img *= 1.0 - mask
    img += mask * value


def render(seed: int, index: int, label: int, size: int = 64) -> np.ndarray:
    """Draw phantom ``index`` of the set for ``seed`` as a float image in [0, 1], size x size."""
    return render_with_lungs(seed, index, label, size)[0]


def render_with_lungs(
    seed: int, index: int, label: int, size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Draw a phantom and return it with its lung-field mask (float in [0, 1]).

    The anatomy, exposure and noise depend only on ``(seed, index)`` and the lesions on a
    generator of their own, so the same index drawn as ``normal`` and as ``lesion``
    differs only by the lesions.
    """
    rng = np.random.default_rng([seed, index])
    lesion_rng = np.random.default_rng([seed, index, 1])
    c = _Canvas(size, rng)
    u = rng.uniform

    # Exposure: the grey levels of air, soft tissue, lung and bone vary per "machine".
    air = u(0.02, 0.12)
    tissue = u(0.55, 0.72)
    lung = u(0.18, 0.32)
    bone = min(1.0, tissue + u(0.12, 0.22))

    img = np.full((size, size), air)
    # Neck and shoulders at the top, the thorax filling most of the frame.
    _paint(img, c.ellipse(0.0, -1.0, u(0.22, 0.3), 0.35), tissue)
    body_w = u(0.95, 1.1)
    body = c.ellipse(0.0, u(0.1, 0.2), body_w, u(1.1, 1.25))
    shoulder_y = u(-0.8, -0.65)
    for side in (-1.0, 1.0):
        body = np.maximum(body, c.ellipse(side * 0.75, shoulder_y, u(0.4, 0.5), 0.3, side * 0.3))
    _paint(img, body, tissue)

    # Lung fields: tall ellipses, tilted outwards at the top, each a little different.
    lung_masks = []
    for side in (-1.0, 1.0):
        cx = side * u(0.36, 0.43) * body_w
        tilt = side * u(0.0, 0.12)
        mask = c.ellipse(cx, u(-0.06, 0.04), u(0.27, 0.33), u(0.58, 0.68), tilt, taper=u(0.25, 0.4))
        lung_masks.append(mask)
    lungs = np.maximum(*lung_masks)
    # Ribs: faint bands across the lungs, curving down towards the sides.
    freq = u(4.5, 6.0)
    phase = u(0.0, 2 * np.pi)
    ribs = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (c.y - 0.35 * c.x * c.x) / 2.0 + phase)
    lung_value = lung + u(0.04, 0.09) * ribs**3 + 0.08 * (c.y + 0.6).clip(0.0, 1.5)
    img = img * (1.0 - lungs) + lungs * lung_value

    # Diaphragm domes cut the lungs from below; the patient's right dome (image left) sits
    # a little higher, above the liver.
    for side, lift in ((-1.0, u(0.0, 0.08)), (1.0, 0.0)):
        dome_y = u(0.78, 0.9) - lift
        _paint(img, c.ellipse(side * u(0.3, 0.4), dome_y + 0.3, u(0.42, 0.5), 0.34), tissue)

    # Mediastinum and spine down the middle, the heart bulging to the patient's left
    # (the image's right, as radiographs are read).
    _paint(img, c.ellipse(0.0, u(-0.25, -0.15), u(0.1, 0.14), u(0.55, 0.65)), tissue + 0.05)
    heart = min(1.0, tissue + u(0.0, 0.08))
    _paint(img, c.ellipse(u(0.08, 0.16), u(0.28, 0.4), u(0.26, 0.36), u(0.22, 0.3), 0.5), heart)
    spine = c.ellipse(0.0, 0.2, u(0.05, 0.07), 1.4) * body
    vertebrae = 0.85 + 0.15 * np.sin(2 * np.pi * c.y * u(5.5, 7.0))
    img = img * (1.0 - spine) + spine * np.maximum(img, bone * vertebrae)

    # Clavicles: thin bright bars across the top of the lungs.
    for side in (-1.0, 1.0):
        clav = c.ellipse(side * 0.38, u(-0.72, -0.62), 0.36, 0.045, side * u(-0.25, -0.1))
        img = np.maximum(img, clav * bone)

    # Lesions: bright, soft-edged opacities centred inside one lung field.
    if label == 1:
        axis = (np.arange(size) + 0.5) / size * 2.0 - 1.0
        sx, sy = np.meshgrid(axis, axis)
        for _ in range(lesion_rng.integers(1, 4)):
            inside = np.argwhere(lung_masks[lesion_rng.integers(0, 2)] > 0.9)
            if len(inside) == 0:
                continue
            row, col = inside[lesion_rng.integers(0, len(inside))]
            cy, cx = (row + 0.5) / size * 2 - 1, (col + 0.5) / size * 2 - 1
            radius = lesion_rng.uniform(0.09, 0.2)
            # The centre is a pixel of the mask, so the blob is drawn in pixel coordinates.
            blob = np.exp(-(((sx - cx) ** 2 + (sy - cy) ** 2) / (2 * radius**2)))
            img = img + lesion_rng.uniform(0.3, 0.5) * blob * lungs

    # Detector: a smooth exposure gradient, blur, quantum noise and a gamma.
    img = img * (1.0 + u(-0.08, 0.08) * c.x + u(-0.06, 0.06) * c.y)
    pil = Image.fromarray((img.clip(0.0, 1.0) * 255).astype(np.uint8))
    pil = pil.filter(ImageFilter.GaussianBlur(radius=u(0.4, 1.0) * size / 64))
    img = np.asarray(pil, dtype=np.float64) / 255.0
    img = img + rng.normal(0.0, u(0.01, 0.04), size=img.shape)
    return img.clip(0.0, 1.0) ** u(0.85, 1.15), lungs


def phantoms(seed: int, count: int, size: int = 64) -> Iterator[tuple[Image.Image, str]]:
    """Yield ``count`` phantom scans as grayscale PIL images with their class names.

    The classes alternate (normal, lesion, normal, ...), so any prefix is balanced.
    """
    for index in range(count):
        label = index % 2
        img = render(seed, index, label, size)
        yield Image.fromarray((img * 255.0 + 0.5).astype(np.uint8)), CLASSES[label]
