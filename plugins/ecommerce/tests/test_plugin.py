from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import entry_points

import pytest
from PIL import Image

from aigc_ecommerce import plugin
from aigc_ecommerce.plugin import load_products
from aigc_run.components import CONTRIBUTIONS, DataRequest
from aigc_run.errors import ConfigError
from aigc_run.scenario import validate


def test_entry_point_is_installed_and_loads() -> None:
    found = {ep.name: ep for ep in entry_points(group="aigc_run.plugins")}
    assert "ecommerce" in found
    assert found["ecommerce"].load() is plugin


def test_each_hook_returns_the_contract_types() -> None:
    names: dict[str, list[str]] = {}
    for hook, kind in CONTRIBUTIONS.items():
        impl = getattr(plugin, hook, None)
        if impl is None:
            continue
        items = impl()
        assert all(isinstance(item, kind) for item in items), hook
        names[hook] = [item.name for item in items]
    assert names == {
        "register_datasets": ["products"],
        "register_preprocessors": ["letterbox-white", "autocontrast"],  # center-crop: engine
        "register_quality_filters": ["background-clean", "near-duplicate"],
        "register_scenarios": ["ecommerce"],
    }
    source = plugin.register_datasets()[0]
    assert source.channels == 3 and source.builtin and "built-in demo catalogue" in source.notice


def test_scenario_file_is_shipped_and_valid() -> None:
    (scenario,) = plugin.register_scenarios()
    assert scenario.path is not None and scenario.path.is_file()
    with scenario.path.open("rb") as f:
        parsed = validate(tomllib.load(f))
    assert parsed.name == "ecommerce" and parsed.plugin == "ecommerce"
    assert parsed.data.source == "products" and parsed.data.image_size == 32
    assert parsed.preprocess.steps == ["letterbox-white"]
    assert parsed.model.family == "gan" and parsed.model.conditional
    assert parsed.filters == {"background-clean": "auto", "near-duplicate": "auto"}
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
