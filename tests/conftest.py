"""Shared fixtures: an isolated AIGC_HOME, plugins installed through real entry points,
registry URLs on SQLite and PostgreSQL, and the reliability tally (what the tests in
tests/reliability put the engine through, printed after the run; here, not in that
folder, because under pytest-xdist only this conftest is loaded where the summary prints).

PostgreSQL comes from AIGC_TEST_POSTGRES_URL (default: a local server with trust auth). When
it is unreachable those tests are skipped, except under CI, where they fail.
"""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa


@pytest.fixture(autouse=True)
def aigc_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own home: cache, runs and SQLite registry under tmp_path."""
    home = tmp_path / "aigc-home"
    monkeypatch.setenv("AIGC_HOME", str(home))
    for name in list(os.environ):
        if name.startswith("AIGC_") and name not in (
            "AIGC_HOME",
            "AIGC_TEST_DATA",
            "AIGC_TEST_POSTGRES_URL",
            "AIGC_TRAIN__DEVICE",  # the root conftest pins the CPU
        ):
            monkeypatch.delenv(name)
    return home


@pytest.fixture
def install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Install a plugin module the way pip would: a module plus a .dist-info folder whose
    entry_points.txt registers it in the group aigc_run.plugins. Discovery is real."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))

    def install(
        name: str, source: str, version: str = "0.1.0", requires: tuple[str, ...] = ()
    ) -> Path:
        """``requires``: Requires-Dist lines, e.g. ``("aigc-run>=0.1,<0.2",)``."""
        module = f"aigc_{name.replace('-', '_')}"
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        info = site / f"aigc_{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: aigc-{name}\nVersion: {version}\n"
            + "".join(f"Requires-Dist: {line}\n" for line in requires)
        )
        (info / "entry_points.txt").write_text(f"[aigc_run.plugins]\n{name} = {module}\n")
        importlib.invalidate_caches()
        sys.modules.pop(module, None)
        return site / f"{module}.py"

    yield install
    importlib.invalidate_caches()


POSTGRES_URL = os.environ.get(
    "AIGC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def postgres_url() -> str:
    """POSTGRES_URL, or under pytest-xdist a database of this worker's own beside it
    (``test_gw0``, made on first use), emptied of aigc_ tables: each test starts from an
    empty database, and workers never drop each other's tables. A skip when the server is
    unreachable (a failure under CI)."""
    url = sa.make_url(POSTGRES_URL)
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    try:
        if worker:
            url = url.set(database=f"{url.database}_{worker}")
            server = sa.create_engine(
                POSTGRES_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
            )
            with server.connect() as conn:
                exists = "SELECT 1 FROM pg_database WHERE datname = :name"
                if not conn.scalar(sa.text(exists), {"name": url.database}):
                    conn.execute(sa.text(f'CREATE DATABASE "{url.database}"'))
            server.dispose()
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        try:
            existing = sa.MetaData()
            existing.reflect(engine)
            existing.drop_all(engine)
        finally:
            engine.dispose()
    except sa.exc.OperationalError as e:
        reason = f"PostgreSQL unreachable at {sa.make_url(POSTGRES_URL)!r}: {e.orig}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(f"{reason}; set AIGC_TEST_POSTGRES_URL to test PostgreSQL")
    return url.render_as_string(hide_password=False)


@pytest.fixture
def postgres() -> str:
    """The URL of an empty PostgreSQL database for this test (see ``postgres_url``)."""
    return postgres_url()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nested' / 'folder' / 'runs.db'}"
    return postgres_url()


# -- the reliability tally --------------------------------------------------------------

TALLY: Counter[str] = Counter()


@pytest.fixture
def tally() -> Counter[str]:
    """Add to it: ``tally["SIGKILLs survived"] += 1``."""
    return TALLY


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist a worker hands its counts to the controller, which prints them."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["aigc_tally"] = dict(TALLY)


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: called on the controller
def pytest_testnodedown(node: object, error: object) -> None:
    TALLY.update(getattr(node, "workeroutput", {}).get("aigc_tally", {}))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY:
        terminalreporter.section("reliability")
        for what, count in sorted(TALLY.items()):
            terminalreporter.write_line(f"{what}: {count}")
