from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import numpy as np
import pytest
from PIL import Image

from aigc_ecommerce import plugin
from aigc_ecommerce.plugin import load_products
from aigc_run import ConfigError, DataRequest
from aigc_run.contract.kinds import KINDS
from aigc_run.scenario import read_toml, resolve


def test_entry_point_is_installed_and_loads() -> None:
    found = {ep.name: ep for ep in entry_points(group="aigc_run.plugins")}
    assert "ecommerce" in found
    assert found["ecommerce"].load() is plugin


def test_each_hook_returns_the_contract_types() -> None:
    names: dict[str, list[str]] = {}
    for kind in KINDS:
        hook = kind.hook
        impl = getattr(plugin, hook, None)
        if impl is None:
            continue
        items = impl()
        assert all(isinstance(item, kind.type) for item in items), hook
        names[hook] = [item.name for item in items]
    assert names == {
        "register_datasets": ["products"],
        "register_preprocessors": [  # center-crop: the engine's own
            "letterbox-white",
            "autocontrast",
            "whiten-background",
            "object-crop",
        ],
        "register_quality_filters": [
            "background-clean",
            "near-duplicate",
            "catalogue-copy",
            "object-margin",
            "sharpness",
            "colour-cast",
            "class-consistency",
        ],
        "register_sample_writers": ["catalogue"],
        "register_scenarios": ["ecommerce"],
    }
    source = plugin.register_datasets()[0]
    assert source.channels == 3 and source.builtin and "built-in demo catalogue" in source.notice


def test_scenario_file_is_shipped_and_valid() -> None:
    (scenario,) = plugin.register_scenarios()
    assert scenario.path is not None and scenario.path.is_file()
    parsed = resolve(read_toml(scenario.path), environ={})  # its [sizes.N] blocks too
    assert parsed.name == "ecommerce" and parsed.plugin == "ecommerce"
    assert parsed.data.source == "products" and parsed.data.image_size == 32
    assert parsed.preprocess.steps == ["letterbox-white"]
    assert parsed.model.family == "gan" and parsed.model.conditional
    assert parsed.filters == {
        "background-clean": "auto",
        "near-duplicate": "auto",
        "catalogue-copy": "auto",
        "object-margin": "off",
        "sharpness": "off",
        "colour-cast": "off",
        "class-consistency": "auto",
    }
    assert set(parsed.filters) <= {f.name for f in plugin.register_quality_filters()}
    assert parsed.output.writer == "png"


def test_importing_the_plugin_does_not_import_torch() -> None:
    code = "import sys, aigc_ecommerce.plugin; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_preprocessors_make_squares() -> None:
    steps = {p.name: p.apply for p in plugin.register_preprocessors()}
    tall = Image.new("RGB", (40, 60), (10, 20, 30))
    boxed = steps["letterbox-white"](tall, 32)
    assert boxed.size == (60, 60)
    assert boxed.getpixel((0, 30)) == (255, 255, 255)  # padding is white
    assert boxed.getpixel((30, 30)) == (10, 20, 30)  # the photo is centred, unscaled
    rgba = Image.new("RGBA", (30, 20), (0, 0, 0, 0))
    assert steps["letterbox-white"](rgba, 32).getpixel((15, 15)) == (255, 255, 255)
    ramp = Image.linear_gradient("L").resize((32, 32)).point(lambda v: 100 + v // 4).convert("RGB")
    stretched = steps["autocontrast"](ramp, 32).convert("L")
    assert stretched.getextrema() == (0, 255)


def test_bad_options_are_config_errors() -> None:
    request = DataRequest(path=None, options={"demo_cont": 5}, image_size=32, channels=3, seed=0)
    with pytest.raises(ConfigError, match="demo_cont"):
        load_products(request)
    request = DataRequest(path=None, options={"demo_count": 0}, image_size=32, channels=3, seed=0)
    with pytest.raises(ConfigError, match="demo_count"):
        load_products(request)


def _floor_photo() -> Image.Image:
    """A grey product (a ring, its middle showing the floor's colour only through a hole)
    on a textured grey floor, off-centre: 80 x 60."""
    rng = np.random.default_rng(0)
    floor = rng.normal(150, 8, (60, 80, 3)).clip(0, 255).astype(np.uint8)  # textured floor
    photo = Image.fromarray(floor)
    photo.paste((40, 40, 40), (10, 15, 40, 45))  # a dark grey product, 30 x 30
    photo.paste((150, 150, 150), (20, 25, 30, 35))  # floor-grey print inside the product
    return photo


def test_whiten_background_paints_the_floor_white_and_keeps_the_product() -> None:
    steps = {p.name: p.apply for p in plugin.register_preprocessors()}
    white = steps["whiten-background"](_floor_photo(), 32)
    assert white.size == (80, 60)
    assert white.getpixel((70, 5)) == (255, 255, 255)  # the floor
    assert white.getpixel((15, 20)) == (40, 40, 40)  # the product (its edge is softened)
    assert white.getpixel((25, 30)) == (150, 150, 150)  # floor-coloured, but inside it


def test_object_crop_centres_the_product_with_a_margin_on_white() -> None:
    steps = {p.name: p.apply for p in plugin.register_preprocessors()}
    cropped = steps["object-crop"](steps["whiten-background"](_floor_photo(), 32), 32)
    side = round(30 * 1.16)  # the product's side plus 8% on each side
    assert cropped.size == (side, side)
    inside = np.asarray(cropped.convert("L")) < 100
    rows, cols = np.nonzero(inside.any(axis=1))[0], np.nonzero(inside.any(axis=0))[0]
    assert abs(rows[0] - (side - 1 - rows[-1])) <= 1 and abs(cols[0] - (side - 1 - cols[-1])) <= 1
    assert rows[0] >= 2 and cropped.getpixel((0, 0)) == (255, 255, 255)
    blank = Image.new("RGB", (40, 20), (200, 200, 200))  # nothing but background
    assert steps["object-crop"](blank, 32).size == (40, 40)  # letterboxed, nothing cut
