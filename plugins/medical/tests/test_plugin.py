from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pluggy

from aigc_medical import plugin
from aigc_run import DataRequest, Sample
from aigc_run.contract import hookspecs
from aigc_run.contract.kinds import KINDS
from aigc_run.scenario import read_toml, resolve

REPO = Path(__file__).resolve().parents[3]


def test_entry_point_is_installed() -> None:
    found = {ep.name: ep for ep in entry_points(group="aigc_run.plugins")}
    assert "medical" in found
    assert found["medical"].load() is plugin


def test_hooks_match_the_contract_and_return_typed_objects() -> None:
    manager = pluggy.PluginManager("aigc_run")
    manager.add_hookspecs(hookspecs)
    manager.register(plugin, name="medical")
    manager.check_pending()  # a misspelt hook would fail here
    names = []
    for kind in KINDS:
        for result in getattr(manager.hook, kind.hook)():
            assert all(isinstance(item, kind.type) for item in result), kind.hook
            names += [item.name for item in result]
    assert sorted(names) == sorted(
        ["scans", "normalize-intensity", "intensity-plausibility",
         "memorisation", "anatomical-plausibility", "dicom", "medical"]
    )  # fmt: skip


def test_scans_source_is_builtin_grayscale_with_a_notice() -> None:
    (source,) = plugin.register_datasets()
    assert source.name == "scans" and source.channels == 1 and source.builtin
    assert "synthetic" in source.notice and "not real patients" in source.notice
    request = DataRequest(path=None, options={"demo_count": 2}, image_size=32, channels=1, seed=0)
    assert all(isinstance(item, Sample) for item in source.load(request))


def test_scenario_file_is_the_repository_copy_and_valid() -> None:
    (scenario,) = plugin.register_scenarios()
    assert scenario.name == "medical" and scenario.path is not None
    assert scenario.path.is_symlink()
    assert not Path(os.readlink(scenario.path)).is_absolute()
    assert scenario.path.resolve() == (REPO / "scenarios" / "medical.toml").resolve()
    parsed = resolve(read_toml(scenario.path), environ={})  # its [sizes.N] blocks too
    assert parsed.name == "medical" and parsed.plugin == "medical"
    assert parsed.data.source == "scans" and parsed.data.image_size == 32
    assert parsed.preprocess.steps == ["normalize-intensity"]
    assert parsed.model.family == "gan" and parsed.model.conditional
    assert parsed.filters == {
        "intensity-plausibility": "auto",
        "memorisation": "auto",
        "anatomical-plausibility": "auto",
    }
    assert parsed.output.writer == "png" and parsed.sample.count == 64
    registered = {p.name for p in plugin.register_preprocessors()}
    assert set(parsed.preprocess.steps) <= registered
    assert set(parsed.filters) <= {f.name for f in plugin.register_quality_filters()}


def test_importing_the_plugin_does_not_import_torch() -> None:
    code = "import sys, aigc_medical.plugin; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
