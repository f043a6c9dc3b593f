"""The command line: exit codes that tell user errors from bugs, defaults taken from the study,
light imports for reading commands, and `plan` measured per pilot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from transfer_influence.cli import EXIT_INTERNAL, EXIT_USAGE, main
from transfer_influence.pipeline.run import run_study
from transfer_influence.study.config import parse_config

from .conftest import tiny_config_dict, write_config


@pytest.fixture(scope="module")
def ridge_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    study = tmp_path_factory.mktemp("cli") / "study"
    config = parse_config(tiny_config_dict(num_models=10, **{"analysis.estimator": "ridge", "baselines.repeats": 0}))
    run_study(config, study, progress=False)
    return study


def test_a_bug_is_reported_as_internal_with_its_own_exit_code(monkeypatch, capsys, ridge_study: Path) -> None:
    def broken(*args, **kwargs):
        raise KeyError("no such column")  # stands for any bug inside a command

    monkeypatch.setattr("transfer_influence.analysis.rankings.overall_influence", broken)
    assert main(["influence", str(ridge_study)]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "internal error: KeyError" in err and "--debug" in err and "Traceback" not in err
    assert main(["--debug", "influence", str(ridge_study)]) == EXIT_INTERNAL
    assert "Traceback" in capsys.readouterr().err


def test_user_errors_exit_2_with_one_message(tmp_path: Path, capsys) -> None:
    assert main(["influence", str(tmp_path / "missing")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def test_influence_defaults_to_the_studys_estimator(ridge_study: Path, capsys) -> None:
    assert main(["influence", str(ridge_study)]) == 0
    out = capsys.readouterr().out
    assert "estimator ridge" in out
    assert (ridge_study / "influence" / "overall_p_true_ridge.csv").exists()
    assert main(["influence", str(ridge_study), "--estimator", "dim"]) == 0
    assert "estimator dim" in capsys.readouterr().out


def test_influence_does_not_import_matplotlib_or_torch(ridge_study: Path) -> None:
    code = (
        "import sys; from transfer_influence.cli import main; "
        f"assert main(['influence', {str(ridge_study)!r}]) == 0; "
        "heavy = [m for m in ('matplotlib', 'torch') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_plan_rate_counts_every_invocation_of_a_pilot(tmp_path: Path) -> None:
    from transfer_influence.pipeline.pilots import run_pilots, training_throughput

    config = parse_config(tiny_config_dict())
    for _ in range(2):  # the second call extends the same pilot
        rec = run_pilots(config, tmp_path / "pilots", (0.5,), pilot_seconds=2.0, target=0.8, budget_minutes=1)
    pilot = rec.pilots[0]
    history = json.loads((tmp_path / "pilots" / "pilot-alpha-0.5" / "timings.json").read_text())
    assert len(history) == 2 and all(h["runs_executed"] > 0 for h in history)
    runs = sum(h["runs_executed"] for h in history)
    seconds = sum(h["runs_wall_seconds"] for h in history)
    assert (pilot.models, pilot.seconds) == (runs, pytest.approx(seconds))
    assert training_throughput(tmp_path / "pilots" / "pilot-alpha-0.5") == (runs, pytest.approx(seconds))


def test_demo_with_too_few_models_names_the_minimum(tmp_path: Path, capsys) -> None:
    cfg = write_config(tmp_path / "c.yaml", tiny_config_dict(**{"design.kind": "partition", "design.alpha": 0.25}))
    assert main(["demo", "--config", str(cfg), "--out", str(tmp_path / "d"), "--models", "3", "--quiet"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "num_models = 3" in err and "need at least" in err
