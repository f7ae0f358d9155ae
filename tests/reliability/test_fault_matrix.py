"""Commands x faults: a read-only target, SIGTERM and SIGKILL mid-run, and a full disk never leave a
half-written output, an ``internal error`` or a traceback, and the next run leaves no temporary files.

Every command first runs once (the baseline outputs, copied to each test's own output folder); each
fault then hits a rerun of the same command over those outputs, and the tree under the output folder
must hash as before. The first runs and the faulted runs are child processes; the run after the fault
goes through the console entry point in this process (what it checks is the job's outputs). Faults
are made without privileges the test could leave behind:

* read-only target: the child runs in its own mount namespace (``unshare -rm``) where the output
  folder is bind-mounted read-only (as root, permission bits alone would not stop a write);
* disk full: ``RLIMIT_FSIZE`` in the child, with ``SIGXFSZ`` ignored so a write past the limit fails
  with ``EFBIG`` as it fails with ``ENOSPC`` on a full disk;
* SIGTERM / SIGKILL: sent at seeded fractions of the baseline's run time.
"""

from __future__ import annotations

import hashlib
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from spendlab.jobs.datasets import generate_deltas, synth_transactions
from spendlab.jobs.experiment import run_experiment
from spendlab.jobs.promote import promote_experiment
from tests.jobs.conftest import write_experiment

pytestmark = pytest.mark.slow

COMMANDS = ("validate", "describe", "features", "score", "reconcile")
FAULTS = ("read_only", "disk_full", "sigterm", "sigkill")
_UNSHARE = shutil.which("unshare")


def _read_only_works() -> bool:
    if _UNSHARE is None:
        return False
    probe = subprocess.run([_UNSHARE, "-rm", "sh", "-c", "mount --bind /tmp /tmp && mount -o remount,ro,bind /tmp /tmp"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mlflow_store: Callable[[Path], str]) -> dict:
    """Inputs for every command and a registered champion for ``score``."""
    root = tmp_path_factory.mktemp("faults")
    old = os.getcwd()
    os.chdir(root)
    mlflow_store(root / "mlruns" / "mlflow.db")  # where the experiment's default store goes
    try:
        exp = write_experiment(root, models=["zero", "last_period"], users=400)
        run_experiment(exp, out_dir=root / "exp-out")
        promote_experiment(str(exp))
    finally:
        os.chdir(old)
    tx = root / "tx.csv"
    synth_transactions(root / "tx.parquet", users=400, months=6, start="2023-01-01", seed=9)
    import pandas as pd

    frame = pd.read_parquet(root / "tx.parquet")
    frame["amount"] = frame["amount"].astype(str)
    frame.loc[frame.index[::50], "amount"] = "not-a-number"  # rejects for --rejects
    frame.to_csv(tx, index=False)
    # what `spendlab datasets deltas --scenario missing_file --users 400 --files 4 --seed 3` writes
    generate_deltas(root / "deltas", scenario=["missing_file"], users=400, files=4, seed=3, fault_share=0.03,
                    update_share=0.4)
    return {"root": root, "tx": tx, "parquet": root / "data" / "tx.parquet",
            "store": f"sqlite:///{root}/mlruns/mlflow.db"}


def _argv(command: str, world: dict, out: Path) -> list[str]:
    tx, root = str(world["tx"]), world["root"]
    inputs = root / "deltas" / "inputs"
    return {
        "validate": ["validate", tx, "--format", "generic", "--rejects", str(out / "rejects.csv")],
        "describe": ["describe", tx, "--format", "generic", "--out", str(out / "describe")],
        "features": ["features", tx, "--format", "generic", "--out", str(out / "features.parquet")],
        "score": ["score", str(world["parquet"]), "--format", "generic", "--out", str(out / "scores.parquet"),
                  "--tracking-uri", world["store"]],
        "reconcile": ["reconcile", "--deltas", str(inputs / "deltas"), "--platform",
                      str(inputs / "platform_summary.csv"), "--source", str(inputs / "client_summary.csv"),
                      "--out", str(out / "reconcile")],
    }[command]


def _tree(out: Path) -> dict[str, str]:
    """sha256 of every file under ``out``, temporary dot-paths included (they must not be left)."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file()}


def _temporaries(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob(".*") if p.name.endswith((".tmp", ".old")))


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "SPENDLAB_TRACEBACK")}


def _spendlab(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "spendlab.cli", *argv]


def _run(argv: list[str], cwd: Path, *, prefix: list[str] | None = None,
         preexec: Callable[[], None] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*(prefix or []), *_spendlab(argv)], capture_output=True, text=True, cwd=cwd, env=_env(),
                          timeout=600, preexec_fn=preexec)


def _rerun_in_process(argv: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Run ``spendlab argv`` through the console entry point in this process: (exit code, stderr).

    The run after a fault is about what the job does with the outputs the fault left, which a run in
    this process shows as a fresh one does; the faults themselves, and each command's first run,
    run in child processes (exit codes and stderr lines are the contract there).
    """
    from spendlab.cli import main

    monkeypatch.chdir(cwd)
    for name in ("MLFLOW_TRACKING_URI", "SPENDLAB_TRACEBACK"):
        monkeypatch.delenv(name, raising=False)
    capsys.readouterr()
    try:
        main(argv)
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return code, capsys.readouterr().err


def _limit_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def _assert_clean_failure(res: subprocess.CompletedProcess, out: Path) -> None:
    assert res.returncode != 0, res.stderr
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith("warning")]
    assert len(lines) == 1, res.stderr
    # the output, or (score) the temporary folder the model is downloaded to when that write fails first
    named = str(out) in lines[0] or ("cannot load model" in lines[0] and "spendlab-model-" in lines[0])
    assert named, f"the line names neither the output nor the model's download folder: {lines[0]}"


@pytest.fixture(scope="module")
def baseline_outputs(world: dict, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, Path], float]:
    """``copy(command, out)``: the command's first run (made once, on first use) copied to ``out``.

    Returns the seconds that first run took. Each test faults a rerun over its own copy.
    """
    first_runs: dict[str, tuple[Path, float]] = {}

    def copy(command: str, out: Path) -> float:
        if command not in first_runs:
            first_out = tmp_path_factory.mktemp(f"first-{command}") / "out"
            first_out.mkdir()
            t0 = time.monotonic()
            first = _run(_argv(command, world, first_out), world["root"])
            assert first.returncode == 0, first.stderr
            first_runs[command] = (first_out, time.monotonic() - t0)
        first_out, seconds = first_runs[command]
        shutil.copytree(first_out, out)  # outputs name no output path (checked: a rerun over the copy equals it)
        return seconds

    return copy


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_fault_never_leaves_a_half_written_output_or_a_traceback(world: dict, baseline_outputs: Callable,
                                                                  tmp_path: Path, command: str, fault: str,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    seconds = baseline_outputs(command, out)  # the first run, made once per command
    argv = _argv(command, world, out)
    baseline = _tree(out)
    assert baseline and not _temporaries(out)

    if fault == "read_only":
        if not _read_only_works():
            pytest.skip("no unprivileged mount namespace on this machine")
        script = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"'
        res = _run(argv, world["root"], prefix=[_UNSHARE, "-rm", "sh", "-c", script, str(out)])
        _assert_clean_failure(res, out)
    elif fault == "disk_full":
        largest = max(p.stat().st_size for p in out.rglob("*") if p.is_file())
        res = _run(argv, world["root"], preexec=_limit_file_size(max(largest // 2, 1)))
        _assert_clean_failure(res, out)
    else:
        sig = signal.SIGTERM if fault == "sigterm" else signal.SIGKILL
        for fraction in random.Random(f"{command}-{fault}").sample([0.5, 0.7, 0.85, 0.95], 2):
            proc = subprocess.Popen(_spendlab(argv), cwd=world["root"], env=_env(), text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            time.sleep(seconds * fraction)
            proc.send_signal(sig)
            _, stderr = proc.communicate(timeout=600)
            assert "Traceback" not in stderr and "internal error" not in stderr, stderr
            if sig == signal.SIGTERM:
                # 143: the handler ran every cleanup; 0: it had finished; -15: still starting up, before
                # spendlab's handler was installed (nothing written yet)
                assert proc.returncode in (143, 0, -signal.SIGTERM), stderr
                assert not _temporaries(out), "SIGTERM left temporary files behind"
            assert {k: v for k, v in _tree(out).items() if not k.split("/")[0].startswith(".")} == baseline
    assert {k: v for k, v in _tree(out).items() if not k.split("/")[0].startswith(".")} == baseline
    code, stderr = _rerun_in_process(argv, world["root"], monkeypatch, capsys)  # the next run: same outputs,
    assert code == 0, stderr                                                    # nothing left over
    assert _tree(out) == baseline and not _temporaries(out)


@pytest.mark.parametrize("library_error", [RuntimeError("Query interrupted"), ValueError("some other failure")])
def test_sigterm_caught_inside_a_library_still_exits_143(monkeypatch: pytest.MonkeyPatch,
                                                         library_error: Exception) -> None:
    """DuckDB turns the SIGTERM handler's exception into its own error: the exit is still a clean 143."""
    import signal

    import spendlab.cli as cli

    def query(*args: object, **kwargs: object) -> None:
        try:
            signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)  # what the signal runs
        except cli.Terminated:
            raise library_error from None  # the library swallows it and raises its own

    monkeypatch.setattr(cli, "app", query)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["describe"])
    assert exit_.value.code == 143
    assert signal.getsignal(signal.SIGTERM) is not cli._raise_terminated  # the handler is restored


def test_duckdb_interrupt_without_sigterm_is_an_interruption_not_a_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    import duckdb

    import spendlab.cli as cli

    def query(*args: object, **kwargs: object) -> None:
        raise duckdb.InterruptException("INTERRUPT Error: Interrupted!")

    monkeypatch.setattr(cli, "app", query)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["describe"])
    assert exit_.value.code == 130
