"""The reference (docs/plugins.md) stays true to the code: every hook of hookspecs.py with
its signature, every field of every public object with its type and default; and every hook
is tested.

The checks are functions of (reference text, hooks), so the last tests can show them
failing on a hookspecs module with one hook more than the reference documents.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import textwrap
import typing
from pathlib import Path
from types import ModuleType
from typing import Any

import aigc_run
from aigc_run.contract import hookspecs

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "plugins.md"


def hooks_in(module: ModuleType) -> dict[str, str]:
    """Each hook's name and its signature as the reference must print it."""
    found = {}
    for name, function in inspect.getmembers(module, inspect.isfunction):
        if not hasattr(function, "aigc_run_spec"):
            continue
        signature = inspect.signature(function)
        parameters = ", ".join(f"{p.name}: {p.annotation}" for p in signature.parameters.values())
        found[name] = f"def {name}({parameters}) -> {signature.return_annotation}"
    return found


def reference_problems(reference: str, hooks: dict[str, str]) -> list[str]:
    """What is wrong with the reference: a hook without a section, another signature, no
    example, or a section for a hook that does not exist."""
    parts = re.split(r"^## ", reference, flags=re.MULTILINE)[1:]
    sections = {part.split("\n", 1)[0].strip(): part for part in parts}
    problems = []
    for name, signature in hooks.items():
        if name not in sections:
            problems.append(f"docs/plugins.md has no section for hook {name}")
        elif signature not in sections[name]:
            problems.append(f"docs/plugins.md shows another signature for {name}: {signature}")
        elif "@hookimpl" not in sections[name]:
            problems.append(f"docs/plugins.md has no @hookimpl example for {name}")
    problems += [
        f"docs/plugins.md documents {n}, which is no hook" for n in sections.keys() - hooks
    ]
    return problems


def untested_hooks(test_sources: str, hooks: dict[str, str]) -> list[str]:
    """Hooks that no test implements (``def <hook>(`` appears in no test file)."""
    return [name for name in hooks if f"def {name}(" not in test_sources]


def _test_sources() -> str:
    return "".join(
        p.read_text() for p in (ROOT / "tests").glob("test_*.py") if p.name != Path(__file__).name
    )


def _hookspecs_with(edit: str = "", added: str = "") -> ModuleType:
    """hookspecs.py as a contributor might change it: one edit, one hook appended."""
    source = Path(hookspecs.__file__).read_text()
    if edit:
        old, new = edit.split(" => ")
        assert old in source
        source = source.replace(old, new)
    module = ModuleType("changed_hookspecs")
    exec(compile(source + textwrap.dedent(added), "changed_hookspecs.py", "exec"), module.__dict__)
    return module


def test_the_reference_documents_every_hook_with_its_exact_signature():
    hooks = hooks_in(hookspecs)
    assert len(hooks) == 14
    assert reference_problems(REFERENCE.read_text(), hooks) == []


def test_every_hook_is_exercised_by_a_test():
    assert untested_hooks(_test_sources(), hooks_in(hookspecs)) == []


NEW_HOOK = '''

@hookspec
def register_palettes() -> list[str] | None:
    """Return colour palettes."""
'''


def test_the_checks_fail_when_a_hook_is_added_without_documentation_or_test():
    hooks = hooks_in(_hookspecs_with(added=NEW_HOOK))
    assert hooks["register_palettes"] == "def register_palettes() -> list[str] | None"
    reference = REFERENCE.read_text()
    assert reference_problems(reference, hooks) == [
        "docs/plugins.md has no section for hook register_palettes"
    ]
    assert untested_hooks(_test_sources(), hooks) == ["register_palettes"]
    # Documenting it, signature and example, is what makes the reference check pass again.
    section = """
        ## register_palettes

        ```python
        def register_palettes() -> list[str] | None
        ```

        ```python
        @hookimpl
        def register_palettes():
            return ["indigo"]
        ```
    """
    assert reference_problems(reference + textwrap.dedent(section), hooks) == []


def test_the_check_fails_when_a_signature_changes_or_a_hook_goes():
    hooks = hooks_in(
        _hookspecs_with(
            "def after_checkpoint(run: RunInfo, checkpoint: str) -> None: => "
            "def after_checkpoint(run: RunInfo, checkpoint: str, step: int) -> None:"
        )
    )
    assert reference_problems(REFERENCE.read_text(), hooks) == [
        "docs/plugins.md shows another signature for after_checkpoint: "
        "def after_checkpoint(run: RunInfo, checkpoint: str, step: int) -> None"
    ]
    del hooks["after_run"]
    assert "docs/plugins.md documents after_run, which is no hook" in reference_problems(
        REFERENCE.read_text(), hooks
    )


# -- the fields of the public objects -------------------------------------------------------


def fields_of(obj: Any) -> list[tuple[str, str, str]]:
    """A public dataclass's or NamedTuple's fields as the reference prints them:
    (name, type, default), the default as ``required`` or the value's repr in backticks."""

    def text(annotation: Any) -> str:
        return (
            annotation.__forward_arg__
            if isinstance(annotation, typing.ForwardRef)
            else str(annotation)
        )

    if not dataclasses.is_dataclass(obj):  # a NamedTuple
        return [(n, text(t), "required") for n, t in obj.__annotations__.items()]
    rows = []
    for f in dataclasses.fields(obj):
        if f.default is not dataclasses.MISSING:
            default = f"`{f.default!r}`"
        elif f.default_factory is not dataclasses.MISSING:
            default = f"`{f.default_factory()!r}`"
        else:
            default = "required"
        rows.append((f.name, text(f.type), default))
    return rows


def public_objects(module: ModuleType = aigc_run) -> dict[str, list[tuple[str, str, str]]]:
    """Every object of the public API that has fields, and its fields."""
    found = {}
    for name in module.__all__:
        obj = getattr(module, name)
        if dataclasses.is_dataclass(obj) or (inspect.isclass(obj) and hasattr(obj, "_fields")):
            found[name] = fields_of(obj)
    return found


def field_problems(reference: str, objects: dict[str, list[tuple[str, str, str]]]) -> list[str]:
    """What the reference gets wrong about the objects' fields: an object without a
    section, a field missing or extra, another type or default, or no meaning given."""
    parts = re.split(r"^### `(\w+)`$", reference, flags=re.MULTILINE)
    sections = dict(zip(parts[1::2], parts[2::2], strict=True))
    problems = []
    for name, fields in objects.items():
        if name not in sections:
            problems.append(f"docs/plugins.md has no section for {name}'s fields")
            continue
        rows = {}
        for line in sections[name].split("\n# ")[0].splitlines():
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)]
            if len(cells) == 6 and cells[1].startswith("`"):
                rows[cells[1].strip("`")] = (cells[2].strip("`"), cells[3], cells[4])
        for field, annotation, default in fields:
            if field not in rows:
                problems.append(f"docs/plugins.md does not document {name}.{field}")
            elif rows[field][:2] != (annotation, default):
                problems.append(
                    f"docs/plugins.md gives {name}.{field} as {rows[field][:2]}, "
                    f"the code as {(annotation, default)}"
                )
            elif not rows[field][2]:
                problems.append(f"docs/plugins.md gives {name}.{field} no meaning")
        problems += [
            f"docs/plugins.md documents {name}.{f}, which is no field"
            for f in rows.keys() - {f for f, _, _ in fields}
        ]
    return problems


def test_the_reference_documents_every_field_of_every_public_object():
    objects = public_objects()
    assert {"QualityFilter", "FilterContext", "DatasetSource", "BaseModel"} <= objects.keys()
    assert field_problems(REFERENCE.read_text(), objects) == []


def test_the_field_check_fails_when_a_field_is_undocumented_or_changed():
    reference = REFERENCE.read_text()
    objects = public_objects()
    row = next(line for line in reference.splitlines() if line.startswith("| `higher_is_better`"))
    assert field_problems(reference.replace(row + "\n", "", 1), objects) == [
        "docs/plugins.md does not document QualityFilter.higher_is_better"
    ]
    added = {**objects, "QualityFilter": [*objects["QualityFilter"], ("tags", "list[str]", "`[]`")]}
    assert field_problems(reference, added) == [
        "docs/plugins.md does not document QualityFilter.tags"
    ]
    changed = reference.replace(
        "| `builtin` | `bool` | `False` |", "| `builtin` | `bool` | `True` |"
    )
    assert field_problems(changed, objects) == [
        "docs/plugins.md gives DatasetSource.builtin as ('bool', '`True`'), "
        "the code as ('bool', '`False`')"
    ]
