"""The built-in demo catalogue: synthetic product photos drawn with PIL.

Six categories of flat-lay and side-view products, each centred on a white background
with a soft drop shadow, in varied colours, proportions, patterns and small poses. Every
image is drawn from ``random.Random(f"{seed}:{index}")``, so the catalogue is the same on
every machine, and any image can be drawn again on its own.

Shapes are written in unit coordinates (0..1, y down) and mapped through a pose (scale,
rotation, shift, mirror); they are drawn at up to 4x the output size and downsampled,
which gives clean anti-aliased edges.
"""

from __future__ import annotations

import colorsys
import functools
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from aigc_run import Sample

CATEGORIES = ("T-Shirt", "Trousers", "Dress", "Shoe", "Handbag", "Cap")

Point = tuple[float, float]
RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Pose:
    """Maps unit coordinates to pixels: mirror, scale about the centre, rotate, shift."""

    size: int  # canvas side in pixels
    scale: float
    angle: float  # radians
    dx: float
    dy: float
    mirror: bool

    def __call__(self, x: float, y: float) -> Point:
        if self.mirror:
            x = 1.0 - x
        x, y = (x - 0.5) * self.scale, (y - 0.5) * self.scale
        c, s = math.cos(self.angle), math.sin(self.angle)
        x, y = x * c - y * s, x * s + y * c
        return ((x + 0.5 + self.dx) * self.size, (y + 0.5 + self.dy) * self.size)

    def points(self, pts: list[Point]) -> list[Point]:
        return [self(x, y) for x, y in pts]

    def length(self, unit: float) -> float:
        return unit * self.scale * self.size


class Canvas:
    """The object layer: a colour image and a silhouette mask, drawn through a pose."""

    def __init__(self, size: int, pose: Pose, base: RGB) -> None:
        self.pose = pose
        self.colour = Image.new("RGB", (size, size), base)
        self.mask = Image.new("L", (size, size), 0)
        self.paint = ImageDraw.Draw(self.colour)
        self.cut = ImageDraw.Draw(self.mask)

    def shape(self, pts: list[Point]) -> None:
        """Add a polygon to the silhouette (it takes the base colour)."""
        self.cut.polygon(self.pose.points(pts), fill=255)

    def thick(self, pts: list[Point], width: float) -> None:
        """Add a thick poly-line to the silhouette (a handle, a strap)."""
        self.cut.line(
            self.pose.points(pts),
            fill=255,
            width=max(1, round(self.pose.length(width))),
            joint="curve",
        )

    def fill(self, pts: list[Point], colour: RGB) -> None:
        self.paint.polygon(self.pose.points(pts), fill=colour)

    def line(self, pts: list[Point], colour: RGB, width: float) -> None:
        self.paint.line(
            self.pose.points(pts),
            fill=colour,
            width=max(1, round(self.pose.length(width))),
            joint="curve",
        )

    def dot(self, x: float, y: float, r: float, colour: RGB) -> None:
        cx, cy = self.pose(x, y)
        rr = self.pose.length(r)
        self.paint.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), fill=colour)


# ---------------------------------------------------------------------------------------
# colours
# ---------------------------------------------------------------------------------------


def _hsv(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (round(r * 255), round(g * 255), round(b * 255))


def _shade(c: RGB, f: float) -> RGB:
    """Darker (f < 1) or lighter towards white (f > 1)."""
    if f <= 1:
        return (round(c[0] * f), round(c[1] * f), round(c[2] * f))
    t = min(f - 1, 1.0)
    r, g, b = (round(v + (255 - v) * t) for v in c)
    return (r, g, b)


def _garment_colour(rng: random.Random) -> RGB:
    """Saturated or dark product colours; never near-white, so the item stands out."""
    kind = rng.random()
    if kind < 0.6:  # a clear colour
        return _hsv(rng.random(), rng.uniform(0.45, 0.9), rng.uniform(0.45, 0.88))
    if kind < 0.85:  # muted / pastel-ish, still well off white
        return _hsv(rng.random(), rng.uniform(0.25, 0.5), rng.uniform(0.55, 0.8))
    return _hsv(rng.random(), rng.uniform(0.0, 0.15), rng.uniform(0.12, 0.55))  # black / grey


def _trouser_colour(rng: random.Random) -> RGB:
    kind = rng.random()
    if kind < 0.45:  # denim
        return _hsv(rng.uniform(0.58, 0.63), rng.uniform(0.4, 0.75), rng.uniform(0.3, 0.65))
    if kind < 0.65:  # khaki / beige / olive
        return _hsv(rng.uniform(0.09, 0.2), rng.uniform(0.3, 0.6), rng.uniform(0.45, 0.75))
    if kind < 0.85:  # black / charcoal / grey
        return _hsv(rng.random(), rng.uniform(0.0, 0.1), rng.uniform(0.12, 0.5))
    return _garment_colour(rng)


def _leather_colour(rng: random.Random) -> RGB:
    kind = rng.random()
    if kind < 0.5:  # browns and tans
        return _hsv(rng.uniform(0.04, 0.1), rng.uniform(0.5, 0.85), rng.uniform(0.3, 0.75))
    if kind < 0.7:  # black
        return _hsv(0.0, 0.0, rng.uniform(0.1, 0.25))
    return _garment_colour(rng)


# ---------------------------------------------------------------------------------------
# the six categories
# ---------------------------------------------------------------------------------------


def _tshirt(cv: Canvas, rng: random.Random, base: RGB) -> None:
    w = rng.uniform(0.19, 0.25)  # half body width
    sl = rng.uniform(0.12, 0.2)  # sleeve length
    top, hem = 0.15, rng.uniform(0.82, 0.88)
    sh = 0.18
    left = [
        (0.5 - w, sh),
        (0.5 - w - sl, sh + 0.6 * sl + 0.04),
        (0.5 - w - sl + 0.075, sh + 0.6 * sl + 0.12),
        (0.5 - w + 0.01, 0.37),
        (0.5 - w + 0.01, hem),
    ]
    right = [(1 - x, y) for x, y in reversed(left)]
    neck = [(0.58, top), (0.555, top + 0.05), (0.5, top + 0.065), (0.445, top + 0.05), (0.42, top)]
    outline = [(0.42, top), *left, *right, *neck[:-1]]
    pattern = rng.random()
    if pattern < 0.3:  # horizontal stripes
        stripe = _shade(base, rng.choice([0.55, 1.6]))
        gap = rng.uniform(0.09, 0.13)  # wide enough to survive 32x32
        y = top + rng.uniform(0.0, gap)
        while y < hem:
            cv.fill([(0, y), (1, y), (1, y + gap / 2), (0, y + gap / 2)], stripe)
            y += gap
    elif pattern < 0.55:  # a chest print
        print_colour = _shade(base, rng.choice([0.45, 1.7]))
        r = rng.uniform(0.06, 0.1)
        cv.dot(0.5, rng.uniform(0.4, 0.5), r, print_colour)
    cv.shape(outline)
    dark = _shade(base, 0.65)
    cv.line(neck, dark, 0.018)  # collar rib
    cv.line([left[1], left[2]], dark, 0.015)  # sleeve hems
    cv.line([right[2], right[3]], dark, 0.015)


def _trousers(cv: Canvas, rng: random.Random, base: RGB) -> None:
    ww = rng.uniform(0.16, 0.2)  # half waist width
    flare = rng.uniform(-0.03, 0.05)
    gap = rng.uniform(0.04, 0.07)  # half the space between the legs at the hem
    top, bottom = 0.08, rng.uniform(0.88, 0.93)
    crotch = rng.uniform(0.28, 0.34)
    outline = [
        (0.5 - ww, top),
        (0.5 + ww, top),
        (0.5 + ww + 0.02, crotch),
        (0.5 + ww + flare, bottom),
        (0.5 + gap, bottom),
        (0.5, crotch),
        (0.5 - gap, bottom),
        (0.5 - ww - flare, bottom),
        (0.5 - ww - 0.02, crotch),
    ]
    cv.shape(outline)
    dark = _shade(base, 0.6)
    band = 0.045
    cv.fill(
        [
            (0.5 - ww, top),
            (0.5 + ww, top),
            (0.5 + ww + 0.002, top + band),
            (0.5 - ww - 0.002, top + band),
        ],
        _shade(base, 0.8),
    )
    cv.line([(0.5, top + band), (0.5, crotch - 0.03)], dark, 0.012)  # fly
    cv.line([(0.5 - ww + 0.02, top + band), (0.5 - ww + 0.09, top + 0.13)], dark, 0.01)  # pockets
    cv.line([(0.5 + ww - 0.02, top + band), (0.5 + ww - 0.09, top + 0.13)], dark, 0.01)
    cv.line(
        [(0.5 - ww - flare + 0.01, bottom - 0.03), (0.5 - gap - 0.01, bottom - 0.03)], dark, 0.008
    )
    cv.line(
        [(0.5 + gap + 0.01, bottom - 0.03), (0.5 + ww + flare - 0.01, bottom - 0.03)], dark, 0.008
    )


def _dress(cv: Canvas, rng: random.Random, base: RGB) -> None:
    hw = rng.uniform(0.24, 0.36)  # half hem width
    waist_y = rng.uniform(0.36, 0.44)
    hem_y = rng.uniform(0.86, 0.93)
    bodice = rng.uniform(0.1, 0.13)
    top = 0.17
    hem = [
        (0.5 + hw * math.cos(t), hem_y + 0.03 * math.sin(t))
        for t in (k * math.pi / 8 for k in range(9))
    ]
    outline = [
        (0.5 - bodice, top),
        (0.5 + bodice, top),
        (0.5 + 0.085, waist_y),
        *hem,
        (0.5 - 0.085, waist_y),
    ]
    if rng.random() < 0.35:  # polka dots
        dot = _shade(base, rng.choice([0.5, 1.75]))
        for gy in range(12):
            for gx in range(12):
                cv.dot((gx + 0.5 * (gy % 2)) / 11, gy / 11, 0.018, dot)
    cv.shape(outline)
    strap = rng.uniform(0.012, 0.03)
    cv.thick([(0.5 - bodice + 0.03, top + 0.01), (0.5 - bodice + 0.045, 0.06)], strap)
    cv.thick([(0.5 + bodice - 0.03, top + 0.01), (0.5 + bodice - 0.045, 0.06)], strap)
    if rng.random() < 0.5:  # a belt
        belt = _shade(base, rng.choice([0.45, 1.6]))
        cv.fill(
            [
                (0.5 - 0.09, waist_y - 0.025),
                (0.5 + 0.09, waist_y - 0.025),
                (0.5 + 0.088, waist_y + 0.01),
                (0.5 - 0.088, waist_y + 0.01),
            ],
            belt,
        )
    cv.line([(0.5 - bodice, top), (0.5 + bodice, top)], _shade(base, 0.7), 0.012)


def _shoe(cv: Canvas, rng: random.Random, base: RGB) -> None:
    high = rng.random() < 0.3  # a high-top / ankle boot
    collar = 0.2 if high else rng.uniform(0.34, 0.4)
    sole_top, sole_bottom = 0.64, rng.uniform(0.7, 0.74)
    upper = [
        (0.1, sole_top),
        (0.11, collar + 0.05),
        (0.14, collar),
        (0.3, collar + 0.02),
        (0.36, collar + 0.05 if not high else collar + 0.02),
        (0.5, 0.44),
        (0.68, 0.5),
        (0.84, 0.54),
        (0.9, 0.6),
        (0.9, sole_top),
    ]
    sole = [
        (0.08, sole_top - 0.01),
        (0.92, sole_top - 0.01),
        (0.93, sole_bottom - 0.02),
        (0.9, sole_bottom),
        (0.1, sole_bottom),
        (0.07, sole_bottom - 0.02),
    ]
    cv.shape(upper)
    cv.shape(sole)
    sole_colour = rng.choice([(222, 222, 218), (60, 60, 60), (170, 120, 70), _shade(base, 0.5)])
    cv.fill(sole, sole_colour)
    dark = _shade(base, 0.55)
    cv.line([(0.08, sole_top - 0.01), (0.92, sole_top - 0.01)], _shade(sole_colour, 0.7), 0.012)
    cv.line([(0.62, 0.5), (0.7, sole_top - 0.02)], dark, 0.012)  # toe cap seam
    lace = rng.choice([(240, 240, 240), (40, 40, 40), _shade(base, 1.6)])
    for k in range(4):  # laces across the instep
        t = k / 3
        x, y = 0.4 + 0.17 * t, collar + 0.06 + (0.46 - collar - 0.03) * t
        cv.line([(x - 0.02, y - 0.03), (x + 0.04, y + 0.02)], lace, 0.014)
    if rng.random() < 0.5:  # a side stripe
        cv.line([(0.3, 0.58), (0.45, 0.5), (0.6, 0.56)], _shade(base, 1.7), 0.02)


def _handbag(cv: Canvas, rng: random.Random, base: RGB) -> None:
    bw = rng.uniform(0.25, 0.32)  # half body width at the top
    flare = rng.uniform(0.0, 0.07)
    top, bottom = rng.uniform(0.4, 0.46), rng.uniform(0.82, 0.88)
    body = [
        (0.5 - bw, top),
        (0.5 + bw, top),
        (0.5 + bw + flare, bottom - 0.02),
        (0.5 + bw + flare - 0.03, bottom),
        (0.5 - bw - flare + 0.03, bottom),
        (0.5 - bw - flare, bottom - 0.02),
    ]
    cv.shape(body)
    span = rng.uniform(0.12, 0.2)
    rise = rng.uniform(0.2, 0.3)
    handle = [
        (0.5 + span * math.cos(t), top + 0.01 - rise * math.sin(t))
        for t in (k * math.pi / 16 for k in range(17))
    ]
    cv.thick(handle, rng.uniform(0.025, 0.04))
    dark = _shade(base, 0.6)
    flap_y = top + rng.uniform(0.14, 0.2)
    cv.fill(
        [
            (0.5 - bw, top),
            (0.5 + bw, top),
            (0.5 + bw + flare * 0.4, flap_y),
            (0.5, flap_y + 0.04),
            (0.5 - bw - flare * 0.4, flap_y),
        ],
        _shade(base, 0.82),
    )
    cv.dot(0.5, flap_y + 0.01, 0.025, (205, 170, 70))  # a brass clasp
    cv.line(
        [(0.5 - bw - flare + 0.03, bottom - 0.03), (0.5 + bw + flare - 0.03, bottom - 0.03)],
        dark,
        0.01,
    )


def _cap(cv: Canvas, rng: random.Random, base: RGB) -> None:
    r = rng.uniform(0.24, 0.29)  # crown radius
    hgt = rng.uniform(0.24, 0.3)  # crown height
    cx, base_y = 0.43, rng.uniform(0.6, 0.64)
    crown = [
        (cx + r * math.cos(t), base_y + hgt * math.sin(t))  # the upper half-ellipse
        for t in (math.pi + k * math.pi / 20 for k in range(21))
    ]
    brim_len = rng.uniform(0.2, 0.28)
    brim = [
        (cx + r * 0.55, base_y - 0.03),
        (cx + r + brim_len * 0.6, base_y - 0.005),
        (cx + r + brim_len, base_y + 0.04),
        (cx + r + brim_len * 0.7, base_y + 0.075),
        (cx + r * 0.3, base_y + 0.04),
        (cx - r, base_y + 0.01),
        (cx - r, base_y),
    ]
    cv.shape(crown)
    cv.shape(brim)
    brim_colour = base if rng.random() < 0.6 else _shade(base, rng.choice([0.5, 1.6]))
    cv.fill(brim, _shade(brim_colour, 0.85))
    dark = _shade(base, 0.6)
    top = (cx + 0.02, base_y - hgt)
    cv.line([top, (cx - r * 0.45, base_y)], dark, 0.01)  # panel seams
    cv.line([top, (cx + r * 0.5, base_y - 0.01)], dark, 0.01)
    cv.dot(top[0], top[1] + 0.006, 0.02, dark)  # the button
    if rng.random() < 0.4:  # a front logo
        cv.dot(cx + r * 0.05, base_y - hgt * 0.45, 0.045, _shade(base, rng.choice([0.45, 1.7])))


_DRAW: dict[
    str, tuple[Callable[[Canvas, random.Random, RGB], None], Callable[[random.Random], RGB]]
] = {
    "T-Shirt": (_tshirt, _garment_colour),
    "Trousers": (_trousers, _trouser_colour),
    "Dress": (_dress, _garment_colour),
    "Shoe": (_shoe, _leather_colour),
    "Handbag": (_handbag, _leather_colour),
    "Cap": (_cap, _garment_colour),
}
_MIRRORED = frozenset({"Shoe", "Cap"})  # side views face either way


# ---------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _light(size: int) -> Image.Image:
    """A diagonal gradient from 255 (top left) to 210 (bottom right), RGB."""
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
    light = 255.0 - 45.0 * (ramp[None, :] + ramp[:, None]) / 2.0
    grey = Image.fromarray(light.round().astype(np.uint8))
    return Image.merge("RGB", (grey, grey, grey))


def render(category: str, rng: random.Random, size: int = 64) -> Image.Image:
    """One product photo of ``category``: an RGB image ``size`` x ``size`` on white."""
    draw, colour_of = _DRAW[category]
    ss = max(1, min(4, 512 // size))  # supersampling factor
    big = size * ss
    pose = Pose(
        size=big,
        scale=rng.uniform(0.8, 0.98),
        angle=math.radians(rng.uniform(-8.0, 8.0)),
        dx=rng.uniform(-0.03, 0.03),
        dy=rng.uniform(-0.03, 0.03),
        mirror=category in _MIRRORED and rng.random() < 0.5,
    )
    base = colour_of(rng)
    cv = Canvas(big, pose, base)
    draw(cv, rng, base)

    # down to the output size: box-averaging the supersampled layer anti-aliases the edges
    colour, mask = cv.colour.reduce(ss), cv.mask.reduce(ss)
    # soft light from the top left: the object darkens slightly towards the bottom right
    colour = ImageChops.multiply(colour, _light(size))
    # a soft drop shadow: the silhouette, shifted down-right and blurred
    off = max(1, round(size * rng.uniform(0.012, 0.025)))
    shadow = ImageChops.offset(mask, off, off).filter(ImageFilter.GaussianBlur(size * 0.025))
    shadow = shadow.point(lambda v: v * 40 // 255)  # at most 40/255 dark
    photo = Image.new("RGB", (size, size), (255, 255, 255))
    photo.paste((0, 0, 0), mask=shadow)
    photo.paste(colour, mask=mask)
    return photo


def catalogue(count: int, seed: int, size: int = 64) -> Iterator[Sample]:
    """``count`` products, the categories in turn, each drawn from its own seeded RNG."""
    for index in range(count):
        category = CATEGORIES[index % len(CATEGORIES)]
        rng = random.Random(f"{seed}:{index}")
        yield Sample(render(category, rng, size), category)
