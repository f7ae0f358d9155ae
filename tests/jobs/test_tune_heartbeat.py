"""``spendlab tune`` and ``spendlab pipeline`` run a study with the same trial heartbeat and grace period.

Both are resolved in one place (``spendlab.cli.common.optuna_heartbeat``): 5 s and 15 s, or what
$SPENDLAB_OPTUNA_HEARTBEAT and $SPENDLAB_OPTUNA_GRACE say. The pipeline used to ignore them and ran
every study with 5 and 15.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

import spendlab.jobs.pipeline as pipeline_job
import spendlab.jobs.tune as tune_job
from spendlab.cli import main
from spendlab.cli.common import UsageError, optuna_heartbeat
from tests.jobs.conftest import write_experiment

HEARTBEAT, GRACE = "SPENDLAB_OPTUNA_HEARTBEAT", "SPENDLAB_OPTUNA_GRACE"


def test_the_heartbeat_is_5_s_with_a_15_s_grace_unless_the_environment_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HEARTBEAT, raising=False)
    monkeypatch.delenv(GRACE, raising=False)
    assert optuna_heartbeat() == (5, 15)
    monkeypatch.setenv(HEARTBEAT, "1")
    assert optuna_heartbeat() == (1, 15)
    monkeypatch.setenv(GRACE, " 4 ")
    assert optuna_heartbeat() == (1, 4)


@pytest.mark.parametrize("value", ["soon", "0", "-3", "1.5"])
def test_a_heartbeat_that_is_not_a_positive_whole_number_is_a_usage_error_naming_it(
        monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(HEARTBEAT, "1")
    monkeypatch.setenv(GRACE, value)
    with pytest.raises(UsageError, match=rf"\$SPENDLAB_OPTUNA_GRACE .*'{value}'"):
        optuna_heartbeat()


def _pipeline_config(root: Path) -> Path:
    exp = write_experiment(root, models=["zero", "ridge"], params={}, users=40)
    cfg = root / "pipeline.yaml"
    cfg.write_text(yaml.safe_dump({"experiment": str(exp), "out_dir": "outputs",
                                   "tune": {"model": "ridge", "trials": 2}, "promote": False, "score": False}))
    return cfg


def test_pipeline_and_tune_hand_the_study_the_same_heartbeat(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What each command gives the study (the pipeline's plan carries it to its tune stage)."""
    monkeypatch.setenv(HEARTBEAT, "2")
    monkeypatch.setenv(GRACE, "7")
    seen: dict[str, tuple[int, int]] = {}

    def tune_experiment(*args: object, heartbeat: tuple[int, int], **kwargs: object) -> None:
        seen["tune"] = heartbeat
        raise SystemExit(0)

    def run_pipeline(plan: pipeline_job.PipelinePlan, console: object = None) -> None:
        pipeline_job.stage_tune(plan, {"tx": object(), "store": object()})

    def execute_tune(plan: object, *, heartbeat: tuple[int, int], **kwargs: object) -> SimpleNamespace:
        seen["pipeline"] = heartbeat
        return SimpleNamespace(params_path=Path("p.yaml"), study_name="s", n_complete=0, best_value=0.0)

    monkeypatch.setattr(tune_job, "tune_experiment", tune_experiment)
    monkeypatch.setattr(pipeline_job, "run_pipeline", run_pipeline)
    monkeypatch.setattr(pipeline_job, "execute_tune", execute_tune)
    cfg = _pipeline_config(workdir)
    with pytest.raises(SystemExit) as exit_:
        main(["tune", str(workdir / "experiments" / "synth_next_month.yaml"), "--model", "ridge"])
    assert exit_.value.code == 0
    main(["pipeline", "-c", str(cfg)])
    assert seen == {"tune": (2, 7), "pipeline": (2, 7)}


def test_a_bad_heartbeat_stops_the_pipeline_with_one_line_and_exit_2(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv(HEARTBEAT, "often")
    ran: list[object] = []
    monkeypatch.setattr(pipeline_job, "run_pipeline", lambda plan, console=None: ran.append(plan))
    with pytest.raises(SystemExit) as exit_:
        main(["pipeline", "-c", str(_pipeline_config(workdir))])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exit_.value.code == 2 and not ran
    assert len(err) == 1 and "SPENDLAB_OPTUNA_HEARTBEAT" in err[0], err
