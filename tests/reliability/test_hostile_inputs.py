"""Hostile inputs: fuzzed scenario settings, malicious checkpoints, class names as paths."""

from __future__ import annotations

import pickle
import string
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aigc_run import AigcError, ConfigError, checkpoints
from aigc_run.run import sampling
from aigc_run.scenario import SECTIONS, Scenario, resolve

BASE = {"name": "fuzz", "data": {"source": "demo"}}


def _fields(section: str) -> list[str]:
    model = Scenario.model_fields[section].annotation
    known = list(getattr(model, "model_fields", ["background-clean"]))  # filters: a dict
    return [*known, "not_a_setting"]


toml_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
setting_keys = st.sampled_from(sorted({f"{s}.{k}" for s in SECTIONS for k in _fields(s)}))


def _validated_or_config_error(call: Any) -> None:
    """Only a valid Scenario or a ConfigError may come out; anything else fails the test."""
    try:
        assert isinstance(call(), Scenario)
    except ConfigError as e:
        assert e.message and "Traceback" not in e.message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from([*SECTIONS, "name", "extra"]), toml_values, max_size=4))
def test_fuzzed_scenario_files_give_a_scenario_or_a_validation_error(tree: dict) -> None:
    _validated_or_config_error(lambda: resolve({**BASE, **tree}, environ={}))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(setting_keys | st.text(max_size=15), st.text(max_size=15)), max_size=4))
def test_fuzzed_set_values_give_a_scenario_or_a_validation_error(pairs: list) -> None:
    overrides = [f"{key}={value}" for key, value in pairs]
    _validated_or_config_error(lambda: resolve(BASE, overrides, environ={}))


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(alphabet=string.ascii_uppercase + "_", max_size=20), st.text(max_size=10)
    )
)
def test_fuzzed_environment_gives_a_scenario_or_a_validation_error(env: dict) -> None:
    environ = {f"AIGC_{name}": value for name, value in env.items()}
    _validated_or_config_error(lambda: resolve(BASE, environ=environ))


class _Payload:
    """Unpickling this runs a command that creates a file: the proof code was run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors", ".bin"])
def test_a_malicious_pickle_checkpoint_is_refused_without_running_it(
    tmp_path: Path, suffix: str
) -> None:
    marker = tmp_path / "payload-ran"
    path = tmp_path / f"model{suffix}"
    path.write_bytes(pickle.dumps({"weight": _Payload(marker)}))
    # torch.save's zip format carries the pickle too: the form a real attack would take
    zipped = tmp_path / "zipped.pt"
    torch.save({"weight": _Payload(marker)}, zipped)

    for candidate in (path, zipped):
        with pytest.raises(AigcError, match="refused to load checkpoint"):
            checkpoints.load(candidate)
    assert not marker.exists(), "the pickle payload ran"


def test_a_truncated_safetensors_checkpoint_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "last.safetensors"
    checkpoints.save(path, {"w": torch.ones(64, 64)}, {})
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(AigcError, match="refused to load checkpoint"):
        checkpoints.load(path)


@given(st.lists(st.text(max_size=30), min_size=1, max_size=8))
def test_class_names_never_escape_the_output_folder(names: list[str]) -> None:
    hostile = [*names, "../../etc", "/etc/passwd", "a\x00b", "..", ".", "C:\\Windows", ""]
    folders = sampling.safe_names(hostile)
    assert len(set(folders)) == len(folders), "two classes would share a folder"
    root = Path("/out/samples")
    for folder in folders:
        resolved = (root / folder / "000001.png").resolve()
        assert resolved.parent.parent == root
        assert "\x00" not in folder and "/" not in folder and "\\" not in folder


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_fuzzed_scenario_file_text_gives_a_scenario_or_a_validation_error(text: str) -> None:
    import tempfile

    from aigc_run.scenario import read_toml

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        _validated_or_config_error(lambda: resolve({**BASE, **read_toml(path)}, environ={}))
