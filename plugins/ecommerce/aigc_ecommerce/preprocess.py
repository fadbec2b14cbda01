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
