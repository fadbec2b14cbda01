"""Scenario validation, overrides and the errors users see for bad values."""

from __future__ import annotations

import pytest

from aigc_run import ConfigError
from aigc_run.scenario import env_overrides, parse_value, resolve

BASE = {"name": "t", "data": {"source": "products"}, "train": {"steps": 100}}


def test_defaults_fill_every_section():
    scenario = resolve(BASE)
    assert scenario.train.steps == 100
    assert scenario.model.family == "gan"
    assert scenario.output.writer == "png"


def test_set_overrides_file_values_and_reads_toml_types():
    scenario = resolve(
        BASE,
        [
            "train.steps=7",
            "train.lr=0.001",
            "model.conditional=false",
            "preprocess.steps=['a', 'b']",
            "data.options.split=val",
        ],
    )
    assert scenario.train.steps == 7
    assert scenario.train.lr == pytest.approx(0.001)
    assert scenario.model.conditional is False
    assert scenario.preprocess.steps == ["a", "b"]
    assert scenario.data.options == {"split": "val"}


def test_environment_overrides_sit_below_set():
    environ = {"AIGC_TRAIN__STEPS": "11", "AIGC_SAMPLE__COUNT": "5", "AIGC_HOME": "/x"}
    assert env_overrides(environ) == [("sample.count", "5"), ("train.steps", "11")]
    assert resolve(BASE, environ=environ).train.steps == 11
    assert resolve(BASE, ["train.steps=12"], environ=environ).train.steps == 12


def test_data_path_overrides_the_file():
    assert resolve(BASE, data_path="/photos").data.path == "/photos"


def test_negative_steps_name_the_path_and_the_range():
    with pytest.raises(ConfigError) as caught:
        resolve(BASE, ["train.steps=-3"])
    assert "train.steps" in caught.value.message
    assert "greater than or equal to 1" in caught.value.message
    assert "-3" in caught.value.message


@pytest.mark.parametrize("override", ["train.stepz=3", "sample.nope=1"])
def test_unknown_key_is_named(override):
    with pytest.raises(ConfigError) as caught:
        resolve(BASE, [override])
    assert override.split("=")[0] in caught.value.message
    assert "unknown setting" in caught.value.message


def test_unknown_section_lists_the_sections():
    with pytest.raises(ConfigError) as caught:
        resolve(BASE, ["trian.steps=3"])
    assert "trian" in caught.value.message and "train" in caught.value.hint


def test_set_without_equals_is_explained():
    with pytest.raises(ConfigError, match="has no '='"):
        resolve(BASE, ["train.steps"])


def test_filter_threshold_accepts_numbers_auto_and_off():
    scenario = resolve(BASE, ["filters.a=0.5", "filters.b=auto", "filters.c=off"])
    assert scenario.filters == {"a": 0.5, "b": "auto", "c": "off"}
    with pytest.raises(ConfigError, match=r"filters\.d"):
        resolve(BASE, ["filters.d=maybe"])


def test_parse_value_falls_back_to_string():
    assert parse_value("12") == 12
    assert parse_value("true") is True
    assert parse_value("./photos dir") == "./photos dir"


SIZED = {
    **BASE,
    "model": {"width": 64},
    "sizes": {"64": {"model": {"width": 32}, "train": {"batch_size": 8}}},
}


def test_the_size_block_applies_at_its_size_only():
    assert resolve(SIZED).model.width == 64  # 32 px: the file's own value
    at_64 = resolve(SIZED, ["data.image_size=64"])
    assert (at_64.model.width, at_64.train.batch_size) == (32, 8)
    assert "sizes" not in at_64.model_dump()  # a run records what it trains with


def test_set_and_the_environment_win_over_the_size_block():
    chosen = resolve(SIZED, ["data.image_size=64", "model.width=48"], environ={})
    assert (chosen.model.width, chosen.train.batch_size) == (48, 8)
    env = {"AIGC_DATA__IMAGE_SIZE": "64", "AIGC_TRAIN__BATCH_SIZE": "4"}
    assert resolve(SIZED, environ=env).train.batch_size == 4
    assert resolve(SIZED, environ=env).model.width == 32


FINE_TUNED = {**SIZED, "fine_tune": {"train": {"steps": 750, "batch_size": 4}}}


def test_the_fine_tune_block_applies_only_to_a_run_started_from_a_trained_model():
    assert resolve(FINE_TUNED, environ={}).train.steps == 100  # the file's
    started = resolve(FINE_TUNED, ["train.init_from=7"], environ={})
    assert (started.train.steps, started.train.batch_size) == (750, 4)
    # laid over the size block, beneath --set and the environment
    at_64 = resolve(FINE_TUNED, ["data.image_size=64", "train.init_from=7"], environ={})
    assert (at_64.model.width, at_64.train.batch_size) == (32, 4)
    mine = resolve(FINE_TUNED, ["train.init_from=7", "train.steps=300"], environ={})
    assert mine.train.steps == 300
    env = {"AIGC_TRAIN__INIT_FROM": "7", "AIGC_TRAIN__STEPS": "200"}
    assert resolve(FINE_TUNED, environ=env).train.steps == 200
    assert "fine_tune" not in started.model_dump()  # a run records what it trains with


@pytest.mark.parametrize(
    ("block", "named"),
    [
        ({"train": {"stepz": 4}}, "[fine_tune]: invalid scenario setting: train.stepz"),
        ({"training": {"steps": 4}}, "[fine_tune]: unknown section 'training'"),
        ({"train": {"init_from": 3}}, "[fine_tune]: train.init_from cannot be set"),
        ("steps = 4", "[fine_tune] must be a table"),
    ],
)
def test_a_bad_fine_tune_block_is_named_even_when_not_in_use(block, named):
    with pytest.raises(ConfigError) as e:
        resolve({**BASE, "fine_tune": block}, environ={})
    assert str(e.value).startswith(named)


@pytest.mark.parametrize(
    ("sizes", "named"),
    [
        (
            {"128": {"train": {"batchsize": 4}}},
            "[sizes.128]: invalid scenario setting: train.batchsize",
        ),
        ({"128": {"training": {"steps": 4}}}, "[sizes.128]: unknown section 'training'"),
        ({"large": {"model": {"width": 4}}}, "[sizes.large]: a size block is named by"),
        ({"128": {"train": {"steps": -1}}}, "[sizes.128]: invalid scenario setting: train.steps"),
    ],
)
def test_a_bad_size_block_is_named_even_when_not_in_use(sizes, named):
    with pytest.raises(ConfigError) as e:
        resolve({**BASE, "sizes": sizes}, environ={})
    assert str(e.value).startswith(named)
