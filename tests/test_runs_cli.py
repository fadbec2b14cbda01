"""`aigc-run runs` for people and scripts: filters, --json, compare and delete."""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from aigc_run.cli import main
from aigc_run.contract.errors import RegistryError
from aigc_run.registry import Registry
from aigc_run.settings import Settings


def cli(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input)


@pytest.fixture
def registry() -> Registry:
    return Registry(Settings().registry_url)


def _run(
    registry: Registry,
    scenario: str,
    config: dict,
    output_dir: Path,
    status: str | None = "completed",
    days_ago: float = 0,
) -> int:
    run_id = registry.create_run(scenario, config, {"aigc-run": "0.1.0"}, "cpu", str(output_dir))
    if status is not None:
        registry.finish_run(run_id, status)
    if days_ago:
        with registry.engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE aigc_runs SET started_at = :t WHERE id = :i"),
                {
                    "t": (datetime.now(UTC) - timedelta(days=days_ago)).replace(tzinfo=None),
                    "i": run_id,
                },
            )
    return run_id


def _output(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / "runs" / name
    (folder / "samples" / "Shoe").mkdir(parents=True)
    (folder / "samples" / "Shoe" / "0000000.png").write_bytes(b"png")
    (folder / "manifest.csv").write_text("file\n")
    return folder


CONFIG_A = {"train": {"steps": 300, "lr": 0.0002}, "model": {"family": "gan"}}
CONFIG_B = {"train": {"steps": 600, "lr": 0.0002}, "model": {"family": "gan"}, "extra": {"x": 1}}


def test_runs_filters_and_json(registry, tmp_path):
    old = _run(registry, "ecommerce", CONFIG_A, tmp_path / "a", days_ago=10)
    failed = _run(registry, "medical", CONFIG_B, tmp_path / "b", status="failed")
    running = _run(registry, "ecommerce", CONFIG_B, tmp_path / "c", status=None)  # this pid

    def listed(*args: str) -> list[int]:
        result = cli("runs", "--json", *args)
        assert result.exit_code == 0, result.output
        return [r["id"] for r in json.loads(result.output)]

    assert listed() == [running, failed, old]
    assert listed("--scenario", "ecommerce") == [running, old]
    assert listed("--status", "failed") == [failed]
    assert listed("--since", "7d") == [running, failed]
    assert listed("--since", "36h", "--scenario", "ecommerce") == [running]
    assert listed("--since", "2000-01-01") == [running, failed, old]
    assert listed("--scenario", "bakery") == []
    assert "no runs match" in cli("runs", "--scenario", "bakery").output

    (first,) = json.loads(cli("runs", "--json", "--status", "failed").output)
    assert first["scenario"] == "medical" and first["status"] == "failed"
    assert datetime.fromisoformat(first["started_at"]).tzinfo is not None

    bad = cli("runs", "--since", "last tuesday")
    assert bad.exit_code == 2
    assert "'last tuesday' is neither a date" in bad.output and "7d" in bad.output


def test_runs_show_json_has_everything_and_no_nan(registry, tmp_path):
    run_id = _run(registry, "ecommerce", CONFIG_A, tmp_path / "a")
    registry.add_metrics(run_id, 5, {"loss_g": 1.5, "loss_d": math.nan})
    registry.add_evaluation(run_id, "fid", 40.0)
    result = cli("runs", "show", str(run_id), "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)  # strict JSON: NaN would not parse in other languages
    assert shown["config"] == CONFIG_A
    assert shown["metrics"] == {"loss_g": 1.5, "loss_d": None}
    assert shown["evaluations"] == {"fid": 40.0}
    assert shown["samples"] == {"total": 0, "accepted": 0, "rejected_by_filter": {}}

    registry.add_samples(run_id, [
        {"file": "", "label": "a", "seed": 1, "index": i, "scores": {}, "accepted": False,
         "rejections": failed}
        for i, failed in enumerate(
            [[("sharp", 0.1, 0.5)], [("sharp", 0.2, 0.5), ("white", 0.3, 0.9)]]
        )
    ])  # fmt: skip
    text = cli("runs", "show", str(run_id)).output
    assert "samples: 2 generated, 0 accepted; rejected by sharp: 2; rejected by white: 1" in text

    missing = cli("runs", "show", "999", "--json")
    assert missing.exit_code == 1 and "no run with id 999" in missing.output


def test_plugins_and_scenarios_json():
    plugins = json.loads(cli("plugins", "--json").output)
    assert {"aigc-run", "ecommerce", "medical"} <= {p["name"] for p in plugins["plugins"]}
    assert {"name": "gan", "plugin": "aigc-run"} in plugins["model_families"]
    scenarios = json.loads(cli("scenarios", "--json").output)
    medical = next(s for s in scenarios if s["name"] == "medical")
    assert medical["plugin"] == "medical" and medical["description"]


def test_compare_marks_differences(registry, tmp_path):
    a = _run(registry, "ecommerce", CONFIG_A, tmp_path / "a")
    b = _run(registry, "ecommerce", CONFIG_B, tmp_path / "b")
    registry.add_metrics(a, 300, {"loss_g": 1.25})
    registry.add_metrics(b, 600, {"loss_g": 0.75})
    registry.add_evaluation(a, "fid", 50.0)

    result = cli("runs", "compare", str(a), str(b))
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line[:2] in ("* ", "  ")]
    lines = {line[2:].split()[0]: line for line in rows}
    assert lines["train.steps"].startswith("*") and "300" in lines["train.steps"]
    assert "600" in lines["train.steps"]
    assert lines["train.lr"].startswith(" ")  # the same in both
    assert lines["extra.x"].split() == ["*", "extra.x", "-", "1"]  # only b has it
    assert "1.25" in lines["loss_g"] and "0.75" in lines["loss_g"]
    assert lines["fid"].split() == ["*", "fid", "50", "-"]

    only = cli("runs", "compare", str(a), str(b), "--diff-only").output
    assert "train.steps" in only and "train.lr" not in only

    data = json.loads(cli("runs", "compare", str(a), str(b), "--json").output)
    assert data["runs"] == [a, b]
    assert data["config"]["train.steps"] == {"values": [300, 600], "differs": True}
    assert data["config"]["model.family"] == {"values": ["gan", "gan"], "differs": False}

    one = cli("runs", "compare", str(a))
    assert one.exit_code == 2 and "two or more run ids" in one.output
    unknown = cli("runs", "compare", str(a), "999")
    assert unknown.exit_code == 1 and "no run with id 999" in unknown.output


def test_delete_asks_then_removes_files_and_rows(registry, tmp_path):
    keep_dir, gone_dir = _output(tmp_path, "keep"), _output(tmp_path, "gone")
    keep = _run(registry, "ecommerce", CONFIG_A, keep_dir)
    gone = _run(registry, "ecommerce", CONFIG_A, gone_dir)
    registry.add_samples(gone, [{"file": "samples/Shoe/0000000.png", "label": "Shoe", "seed": 1,
                                 "index": 0, "scores": {}, "accepted": True}])  # fmt: skip
    registry.add_checkpoint(gone, 1, str(gone_dir / "c.safetensors"), "ab")

    declined = cli("runs", "delete", str(gone), input="n\n")
    assert declined.exit_code == 1 and "Aborted" in declined.output
    assert gone_dir.exists() and registry.get_run(gone).status == "completed"

    confirmed = cli("runs", "delete", str(gone), input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert f"run {gone}  ecommerce  completed  {gone_dir}" in confirmed.output
    assert "deleted run" in confirmed.output
    assert not gone_dir.exists()
    with pytest.raises(RegistryError, match=f"no run with id {gone}"):
        registry.get_run(gone)
    assert keep_dir.exists() and registry.get_run(keep).samples.total == 0
    with registry.engine.connect() as conn:  # no orphans left behind
        for table in ("aigc_samples", "aigc_checkpoints"):
            assert conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() == 0


def test_delete_refuses_running_unknown_and_broad_folders(registry, tmp_path, aigc_home):
    done_dir = _output(tmp_path, "done")
    done = _run(registry, "ecommerce", CONFIG_A, done_dir)
    running = _run(registry, "ecommerce", CONFIG_A, _output(tmp_path, "running"), status=None)
    assert registry.get_run(running).pid == os.getpid()  # alive: never reaped

    busy = cli("runs", "delete", str(done), str(running), "--yes")
    assert busy.exit_code == 1
    assert f"run {running} is running" in busy.output and "nothing was deleted" in busy.output
    unknown = cli("runs", "delete", str(done), "999", "--yes")
    assert unknown.exit_code == 1 and "no run with id 999" in unknown.output
    broad = _run(registry, "ecommerce", CONFIG_A, aigc_home)  # output.folder set to AIGC_HOME
    refused = cli("runs", "delete", str(done), str(broad), "--yes")
    assert refused.exit_code == 1 and "not a run's own folder" in refused.output
    assert done_dir.exists() and registry.get_run(done).status == "completed"
    assert aigc_home.exists()


def test_failed_deletion_stays_visible_and_can_be_finished(registry, tmp_path):
    odd = tmp_path / "odd"
    odd.write_text("a file where the run's folder should be")  # rmtree cannot remove it
    run_id = _run(registry, "ecommerce", CONFIG_A, odd)

    failed = cli("runs", "delete", str(run_id), "--yes")
    assert failed.exit_code == 1
    assert f"could not remove {odd}" in failed.output
    assert f"aigc-run runs delete {run_id}" in failed.output  # the hint says how to finish
    assert registry.get_run(run_id).status == "deleting"
    assert "deleting" in cli("runs").output

    odd.unlink()
    finished = cli("runs", "delete", str(run_id), "--yes")
    assert finished.exit_code == 0, finished.output
    assert "no files left" in finished.output
    assert registry.list_runs() == []


def test_registry_of_a_newer_aigc_run_is_a_short_error(registry):
    with registry.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0999'"))
    result = cli("runs")
    assert result.exit_code == 1
    assert "created by a newer aigc-run (schema revision 0999)" in result.output
    assert "Hint: upgrade aigc-run" in result.output
    assert "Traceback" not in result.output
