"""The plugin contract: discovery through entry points, validation, and errors naming plugins."""

from __future__ import annotations

import pytest

from aigc_run import PluginError, __version__
from aigc_run.contract.kinds import DATASETS, FILTERS, MODEL_FAMILIES, WRITERS
from aigc_run.plugins import BUILTIN, Plugins

DATASET_PLUGIN = """
from aigc_run import hookimpl
from aigc_run import DatasetSource

def load(request):
    return []

@hookimpl
def register_datasets():
    return [DatasetSource("{name}", "a test source", load, channels=1, builtin=True)]
"""


def test_builtin_model_families_arrive_through_the_hook():
    plugins = Plugins(load_entry_points=False)
    families = plugins.contributions(MODEL_FAMILIES)
    assert {"gan", "vae"} <= set(families)
    assert families["gan"].plugin == BUILTIN
    assert "png" in plugins.contributions(WRITERS)


def test_entry_point_plugin_is_discovered_with_its_version(install_plugin):
    install_plugin("textiles", DATASET_PLUGIN.format(name="looms"), version="2.3.0")
    plugins = Plugins()
    assert plugins.versions["textiles"] == "2.3.0"
    assert plugins.contributions(DATASETS)["looms"].plugin == "textiles"
    assert plugins.hooks_of("textiles") == ["register_datasets"]


def test_disabled_plugin_is_not_loaded(install_plugin):
    install_plugin("textiles", DATASET_PLUGIN.format(name="looms"))
    plugins = Plugins(disabled={"textiles"})
    assert "textiles" not in plugins.versions
    assert "looms" not in plugins.contributions(DATASETS)


def test_duplicate_names_are_an_error_naming_both_plugins(install_plugin):
    install_plugin("alpha", DATASET_PLUGIN.format(name="same"))
    install_plugin("beta", DATASET_PLUGIN.format(name="same"))
    with pytest.raises(PluginError) as caught:
        Plugins().contributions(DATASETS)
    assert "alpha" in str(caught.value) and "beta" in str(caught.value)
    assert "'same'" in str(caught.value)


def test_hook_that_raises_names_plugin_and_hook(install_plugin):
    install_plugin(
        "broken",
        """
        from aigc_run import hookimpl

        @hookimpl
        def register_quality_filters():
            raise RuntimeError("boom")
    """,
    )
    with pytest.raises(PluginError) as caught:
        Plugins().contributions(FILTERS)
    assert caught.value.plugin == "broken"
    assert caught.value.hook == "register_quality_filters"
    assert "RuntimeError: boom" in caught.value.message


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("return 'not a list'", "not a list"),
        ("return [42]", "returned a int where a DatasetSource was expected"),
        ("return [DatasetSource('../up', 'x', len, channels=1)]", "not a short name"),
        ("return [DatasetSource('ok', 'x', 'not callable', channels=1)]", "load is not callable"),
        ("return [DatasetSource('ok', 'x', len, channels=4)]", "channels must be 1 or 3"),
    ],
)
def test_wrong_returns_are_rejected_at_load(install_plugin, body, problem):
    install_plugin(
        "sloppy",
        f"""
        from aigc_run import hookimpl
        from aigc_run import DatasetSource

        @hookimpl
        def register_datasets():
            {body}
    """,
    )
    with pytest.raises(PluginError) as caught:
        Plugins().contributions(DATASETS)
    assert caught.value.plugin == "sloppy"
    assert problem in caught.value.message


def test_misspelt_hook_fails_at_once_naming_the_plugin(install_plugin):
    install_plugin(
        "typo",
        """
        from aigc_run import hookimpl

        @hookimpl
        def register_dataset():
            return []
    """,
    )
    with pytest.raises(PluginError) as caught:
        Plugins()
    assert caught.value.plugin == "typo"
    assert "register_dataset" in caught.value.message


def test_plugin_that_fails_to_import_is_named(install_plugin):
    install_plugin("missingdep", "import not_a_module_anywhere\n")
    with pytest.raises(PluginError) as caught:
        Plugins()
    assert caught.value.plugin == "missingdep"
    assert caught.value.hook == "load"


def test_lifecycle_hook_error_names_plugin(install_plugin):
    install_plugin(
        "observer",
        """
        from aigc_run import hookimpl

        @hookimpl
        def after_checkpoint(checkpoint):
            raise ValueError("disk full in the exporter")
    """,
    )
    plugins = Plugins()
    with pytest.raises(PluginError) as caught:
        plugins.after_checkpoint(run=None, checkpoint="x.safetensors")
    assert (caught.value.plugin, caught.value.hook) == ("observer", "after_checkpoint")


def test_on_run_error_failures_are_returned_not_raised(install_plugin):
    install_plugin(
        "noisy",
        """
        from aigc_run import hookimpl

        @hookimpl
        def on_run_error(run, error):
            raise RuntimeError("cannot notify")
    """,
    )
    failures = Plugins().on_run_error(run=None, error=ValueError("original"))
    assert [f.plugin for f in failures] == ["noisy"]


@pytest.mark.parametrize(
    "requires",
    [
        (),  # no range: any engine version
        ("aigc-run",),
        ("aigc-run>=0.1,<0.2", "pillow>=10"),
        ("aigc-run>=9; extra == 'future'",),  # only for an optional extra
    ],
)
def test_plugin_supporting_this_engine_version_loads(install_plugin, requires):
    install_plugin("textiles", DATASET_PLUGIN.format(name="looms"), requires=requires)
    assert "looms" in Plugins().contributions(DATASETS)


def test_plugin_for_another_engine_version_is_refused_naming_both(install_plugin):
    install_plugin(
        "textiles", "raise SystemExit('must not be imported')\n", "2.0.0", ("aigc-run>=0.4,<0.5",)
    )
    with pytest.raises(PluginError) as caught:
        Plugins()
    assert (caught.value.plugin, caught.value.hook) == ("textiles", "load")
    assert "aigc-textiles 2.0.0 supports aigc-run<0.5,>=0.4" in caught.value.message
    assert f"aigc-run {__version__} is installed" in caught.value.message
    assert "AIGC_DISABLE_PLUGINS=textiles" in caught.value.hint
    assert "textiles" not in Plugins(disabled={"textiles"}).versions
