"""The hook reference (docs/plugins.md) stays true to hookspecs.py, and every hook is tested."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from aigc_run import hookspecs

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "plugins.md"


def _hooks() -> dict[str, str]:
    """Each hook's name and its signature as the reference must print it."""
    found = {}
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        if not hasattr(function, "aigc_run_spec"):
            continue
        signature = inspect.signature(function)
        parameters = ", ".join(f"{p.name}: {p.annotation}" for p in signature.parameters.values())
        found[name] = f"def {name}({parameters}) -> {signature.return_annotation}"
    return found


def _reference_sections(text: str) -> dict[str, str]:
    sections = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    return {section.split("\n", 1)[0].strip(): section for section in sections}


def test_every_hook_has_a_section_with_its_exact_signature():
    sections = _reference_sections(REFERENCE.read_text())
    hooks = _hooks()
    assert len(hooks) == 13
    for name, signature in hooks.items():
        assert name in sections, f"docs/plugins.md has no section for hook {name}"
        assert signature in sections[name], f"docs/plugins.md shows another signature for {name}"
        assert "@hookimpl" in sections[name] or "hookimpl" in sections[name], name


def test_reference_has_no_section_for_a_hook_that_does_not_exist():
    assert set(_reference_sections(REFERENCE.read_text())) == set(_hooks())


def test_the_check_catches_a_missing_hook():
    # The same check, on a reference with one section removed, must fail.
    text = REFERENCE.read_text()
    without = re.sub(r"^## after_checkpoint\n.*?(?=^## )", "", text, flags=re.MULTILINE | re.DOTALL)
    assert "after_checkpoint" in _hooks()
    assert "after_checkpoint" not in _reference_sections(without)


def test_every_hook_is_exercised_by_a_test():
    tests = "".join(
        p.read_text() for p in (ROOT / "tests").glob("test_*.py") if p.name != Path(__file__).name
    )
    missing = [name for name in _hooks() if f"def {name}(" not in tests]
    assert not missing, f"no test implements these hooks: {missing}"
