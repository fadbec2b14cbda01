"""A database URL's password never appears in output, errors or the registry."""

from __future__ import annotations

import os
import subprocess
import sys

import sqlalchemy as sa

SECRET = "pw-3f9c-do-not-print"

GREYS = """
from PIL import Image
from aigc_run import hookimpl
from aigc_run import DatasetSource, Sample, ScenarioFile

def load(request):
    for i in range(16):
        yield Sample(Image.new("L", (16, 16), 40 + 10 * i), "grey")

@hookimpl
def register_datasets():
    return [DatasetSource("greys", "grey squares", load, channels=1, builtin=True)]

@hookimpl
def register_scenarios():
    return [ScenarioFile("greys", "grey squares", content={
        "name": "greys", "plugin": "greys",
        "data": {"source": "greys", "image_size": 16},
        "model": {"width": 8, "latent_dim": 8},
        "train": {"steps": 2, "batch_size": 8, "log_every": 1, "checkpoint_every": 2},
        "sample": {"count": 4, "batch_size": 4},
    })]
"""


def _with_password(url: str, password: str) -> str:
    return sa.make_url(url).set(password=password).render_as_string(hide_password=False)


def _aigc(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIGC_DATABASE_URL": url}
    command = [sys.executable, "-m", "aigc_run.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def test_password_is_not_shown_by_runs_errors_or_stored(install_plugin, postgres):
    install_plugin("greys", GREYS)
    url = _with_password(postgres, SECRET)  # trust auth: any password works

    outputs = [
        _aigc("scenario", "greys", "--quiet", url=url),
        _aigc("runs", url=url),
        _aigc("scenario", "greys", "--set", "train.steps=-1", url=url),  # a config error
        _aigc("runs", url=_with_password("postgresql+psycopg://u@127.0.0.1:1/x", SECRET)),
        _aigc(
            "--debug", "runs", url=_with_password("postgresql+psycopg://u@127.0.0.1:1/x", SECRET)
        ),
    ]
    assert outputs[0].returncode == 0, outputs[0].stderr
    assert outputs[3].returncode != 0 and "127.0.0.1" in outputs[3].stderr + outputs[3].stdout
    for done in outputs:
        assert SECRET not in done.stdout + done.stderr

    engine = sa.create_engine(postgres)
    try:
        with engine.connect() as connection:
            tables = [t for t in sa.inspect(connection).get_table_names() if t.startswith("aigc")]
            dump = [
                str(row)
                for table in tables
                for row in connection.execute(sa.text(f"select * from {table}"))
            ]
    finally:
        engine.dispose()
    assert dump and not any(SECRET in row for row in dump)
