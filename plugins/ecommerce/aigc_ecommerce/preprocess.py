"""Preprocessing steps for product photos: PIL in, PIL out, applied once before caching.

The engine converts to the source's channels and resizes to ``data.image_size`` after the
steps, so a step only has to get the framing right. (``center-crop`` is the engine's own.)
"""

from __future__ import annotations

from PIL import Image, ImageOps

from aigc_ecommerce.folder import to_rgb

WHITE = (255, 255, 255)


def letterbox_white(image: Image.Image, image_size: int) -> Image.Image:
    """Pad to a square on white, the image centred and its aspect ratio kept."""
    image = to_rgb(image)
    w, h = image.size
    side = max(w, h)
    if w == h:
        return image
    canvas = Image.new("RGB", (side, side), WHITE)
    canvas.paste(image, ((side - w) // 2, (side - h) // 2))
    return canvas


def autocontrast(image: Image.Image, image_size: int) -> Image.Image:
    """Stretch each photo's levels (1% clipped at both ends): evens out dim phone shots."""
    return ImageOps.autocontrast(to_rgb(image), cutoff=1, preserve_tone=True)


# whiten-background and object-crop ------------------------------------------------------

BORDER = 0.04  # the frame the background colour is estimated from: 4% of the shorter side
#: A pixel is background when every channel is within this of the background colour
#: (0..255). Loose enough for a floor's texture and a shadow's edge, tight enough to keep
#: a grey garment on a white floor.
BACKGROUND_TOLERANCE = 40
CROP_MARGIN = 0.08  # object-crop leaves this share of the object's larger side on each side


def estimate_background(image: Image.Image) -> tuple[int, int, int]:
    """The median colour of the border frame: what the product was photographed on."""
    import numpy as np

    a = np.asarray(to_rgb(image))
    b = max(1, round(min(a.shape[:2]) * BORDER))
    frame = np.concatenate([a[:b].reshape(-1, 3), a[-b:].reshape(-1, 3),
                            a[:, :b].reshape(-1, 3), a[:, -b:].reshape(-1, 3)])  # fmt: skip
    r, g, bl = np.median(frame, axis=0)
    return int(r), int(g), int(bl)


def background_mask(image: Image.Image) -> Image.Image:
    """Mode "L" mask, 255 where the pixel is background: close to the estimated background
    colour AND connected to the border (so a grey product on a grey floor keeps its middle)."""
    import numpy as np

    rgb = to_rgb(image)
    a = np.asarray(rgb, dtype=np.int16)
    near = np.abs(a - np.array(estimate_background(rgb))).max(axis=2) <= BACKGROUND_TOLERANCE
    # Grow from the border through background-like pixels (a flood fill by repeated
    # 4-neighbour dilation: numpy, so fast enough for thousands of photos).
    reached = np.zeros_like(near)
    reached[[0, -1], :] = near[[0, -1], :]
    reached[:, [0, -1]] |= near[:, [0, -1]]
    while True:
        grown = reached.copy()
        grown[1:] |= reached[:-1]
        grown[:-1] |= reached[1:]
        grown[:, 1:] |= reached[:, :-1]
        grown[:, :-1] |= reached[:, 1:]
        grown &= near
        if np.array_equal(grown, reached):
            return Image.fromarray(reached.astype(np.uint8) * 255)
        reached = grown


def whiten_background(image: Image.Image, image_size: int) -> Image.Image:
    """Estimate the background from the border and paint it white, with a soft edge.

    Only background pixels connected to the border are whitened; the product itself is
    left as it is. A photo on a floor or a bed becomes a catalogue shot on white.
    """
    from PIL import ImageFilter

    rgb = to_rgb(image)
    soft = background_mask(rgb).filter(ImageFilter.GaussianBlur(max(1, min(rgb.size) // 150)))
    return Image.composite(Image.new("RGB", rgb.size, WHITE), rgb, soft)


def object_crop(image: Image.Image, image_size: int) -> Image.Image:
    """A square centred on the product (what is not background), with a margin, on white.

    When no product is found (the whole photo looks like background), the photo is
    letterboxed instead, so nothing is cut off.
    """
    rgb = to_rgb(image)
    box = background_mask(rgb).point(lambda v: 255 - v).getbbox()  # the foreground's box
    if box is None:
        return letterbox_white(rgb, image_size)
    left, top, right, bottom = box
    side = round(max(right - left, bottom - top) * (1 + 2 * CROP_MARGIN))
    cx, cy = (left + right) // 2, (top + bottom) // 2
    x0, y0 = cx - side // 2, cy - side // 2
    canvas = Image.new("RGB", (side, side), WHITE)  # beyond the photo's edge: white
    canvas.paste(rgb, (-x0, -y0))
    return canvas
