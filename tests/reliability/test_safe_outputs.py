"""Issue 15 item 1: spendlab never deletes or clobbers what it did not create.

Every command with an output is run against every hostile target; each must exit 2 with one
line and leave the whole tree (the working directory, its parent, the inputs, the foreign
folder) byte-for-byte as it was. Reruns onto spendlab's own earlier output keep working.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from spendlab.io.atomic import atomic_path
from spendlab.io.safe_out import MARKER, UnsafeOutputError, check_output
from spendlab.jobs.datasets import synth_transactions
from tests.jobs.conftest import write_experiment
from tests.reliability.cli_harness import chdir, run_cli, tree_state

# Each command with an output, with {out} where the output goes; run from root/proj.
COMMANDS = {
    "describe": ["describe", "data/base.csv", "--format", "millions", "--config", "reader.yaml", "--out", "{out}"],
    "validate --rejects": ["validate", "data/base.csv", "--format", "millions", "--config", "reader.yaml",
                           "--rejects", "{out}"],
    "features": ["features", "data/base.csv", "--format", "millions", "--out", "{out}"],
    "score": ["score", "data/base.csv", "--format", "millions", "--out", "{out}"],
    "experiment run": ["experiment", "run", "exp.yaml", "--out", "{out}"],
    "reconcile": ["reconcile", "--deltas", "data", "--platform", "data/base.csv", "--source", "data/base.csv",
                  "--out", "{out}"],
    "datasets synth": ["datasets", "synth", "--out", "{out}", "--users", "10", "--months", "2"],
    "datasets deltas": ["datasets", "deltas", "--out", "{out}", "--users", "20", "--files", "1"],
    "pipeline": ["pipeline", "--config", "{config}"],
    "monitor": ["monitor", "data/base.csv", "data/base.csv", "--format", "millions", "--out", "{out}"],
    "replay": ["replay", "exp.yaml", "--from", "2024-01", "--to", "2024-02", "--out", "{out}"],
    "experiment covariates": ["experiment", "covariates", "exp.yaml", "--out", "{out}"],
    "datasets synth-covariates": ["datasets", "synth-covariates", "--out", "{out}", "--users", "10", "--months", "2"],
}
FILE_OUTPUTS = {"validate --rejects", "features", "score", "datasets synth"}

# name -> the path given on the command line (relative to root/proj)
TARGETS = {
    "cwd": ".",
    "cwd-slash": "./",
    "parent-of-cwd": "..",
    "root": "/",
    "input-folder": "data",
    "input-file": "data/base.csv",
    "foreign-dir": "foreign",
    "dev-null": "/dev/null",
    "fifo": "fifo",
    "symlink-to-foreign-dir": "link",
    "symlink-to-input": "link-to-input.csv",
    "file-where-a-dir-goes": "notes.txt",
    "below-a-file": "notes.txt/out",
}


def _refused(command: str, target: str) -> bool:
    """Every pair is refused except the two that overwrite an ordinary file with a file output."""
    if command in FILE_OUTPUTS and target == "file-where-a-dir-goes":
        return False  # an existing regular file that is not an input is overwritten (like cp)
    if command == "datasets synth" and target in ("input-file", "symlink-to-input"):
        return False  # synth has no input: base.csv is just a file to it
    return True


CASES = [(c, t) for c in COMMANDS for t in TARGETS if _refused(c, t)]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/proj is the working directory; root is hashed around every case."""
    root = tmp_path_factory.mktemp("safe-out")
    proj = root / "proj"
    (proj / "data").mkdir(parents=True)
    synth_transactions(proj / "data" / "base.csv", users=20, months=3, fmt="millions", seed=1)
    (proj / "reader.yaml").write_text("reader: {}\n")
    (proj / "exp.yaml").write_text("name: x\n")
    (proj / "foreign").mkdir()
    (proj / "foreign" / "precious.txt").write_text("not spendlab's\n")
    (proj / "link").symlink_to("foreign")
    (proj / "link-to-input.csv").symlink_to("data/base.csv")
    os.mkfifo(proj / "fifo")
    (proj / "notes.txt").write_text("my notes\n")
    (root / "sibling.txt").write_text("beside the project\n")
    for name, target in TARGETS.items():
        (proj / f"pipeline-{name}.yaml").write_text(yaml.safe_dump({"out_dir": target, "experiment": "exp.yaml"}))
    return root


def _argv(command: str, target: str) -> list[str]:
    name = next(n for n, t in TARGETS.items() if t == target)
    return [a.replace("{out}", target).replace("{config}", f"pipeline-{name}.yaml") for a in COMMANDS[command]]


@pytest.mark.parametrize(("command", "target"), CASES, ids=[f"{c}->{t}" for c, t in CASES])
def test_refused_output_targets_exit_2_in_one_line_and_change_nothing(sandbox: Path, command: str,
                                                                       target: str) -> None:
    before = tree_state(sandbox)
    with chdir(sandbox / "proj"):
        run = run_cli(_argv(command, TARGETS[target]))
    assert run.code == 2, run
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stdout + run.stderr, run
    assert tree_state(sandbox) == before
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.mark.parametrize("out_dir", ["../escaped", "/tmp/spendlab-escaped-out", "a/../../escaped"])
def test_pipeline_out_dir_outside_the_project_is_refused(sandbox: Path, out_dir: str) -> None:
    cfg = sandbox / "proj" / "escaping.yaml"
    cfg.write_text(yaml.safe_dump({"out_dir": out_dir, "experiment": "exp.yaml"}))
    try:
        before = tree_state(sandbox)
        with chdir(sandbox / "proj"):
            run = run_cli(["pipeline", "--config", "escaping.yaml"])
        assert run.code == 2 and ("escapes" in run.stderr or "relative" in run.stderr), run
        assert tree_state(sandbox) == before
        assert not Path("/tmp/spendlab-escaped-out").exists()
    finally:
        cfg.unlink()


def test_every_command_with_an_output_is_in_the_matrix() -> None:
    from tests.reliability.cli_harness import leaf_commands

    with_output = {name for name, params in leaf_commands().items()
                   if any(p.name in {"out_dir", "out_path", "rejects"} for p in params) or name == "pipeline"}
    assert with_output == {c.split(" --")[0] for c in COMMANDS}


def test_reruns_onto_spendlabs_own_outputs_keep_working(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    synth_transactions(tmp_path / "data" / "base.csv", users=20, months=3, fmt="millions", seed=1)
    runs = [
        ["describe", "data/base.csv", "--format", "millions", "--out", "out/describe"],
        ["validate", "data/base.csv", "--format", "millions", "--rejects", "out/rejects.csv"],
        ["datasets", "synth", "--out", "out/synth.parquet", "--users", "10", "--months", "2"],
        ["datasets", "deltas", "--out", "out/deltas", "--users", "20", "--files", "2"],
        ["reconcile", "--deltas", "out/deltas/inputs/deltas", "--platform", "out/deltas/inputs/platform_summary.csv",
         "--source", "out/deltas/inputs/client_summary.csv", "--out", "out/reconcile"],
        ["features", "data/base.csv", "--format", "millions", "--out", "out/features.parquet"],
    ]
    with chdir(tmp_path):
        first = []
        for argv in runs:
            run = run_cli(argv)
            assert run.code == 0, (argv, run)
            first.append(tree_state(tmp_path / "out"))
        for argv in runs:
            run = run_cli(argv)
            assert run.code == 0, (argv, run)
        assert tree_state(tmp_path / "out") == first[-1]  # byte-identical reruns, nothing left beside
    for d in ("describe", "deltas", "reconcile"):
        assert (tmp_path / "out" / d / MARKER).is_file()


def test_an_empty_directory_and_a_symlink_to_spendlabs_output_are_written_through(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with atomic_path(tmp_path / "empty") as tmp:
        tmp.mkdir()
        (tmp / "a.txt").write_text("1")
    assert (tmp_path / "empty" / "a.txt").read_text() == "1"
    (tmp_path / "link").symlink_to("empty")
    with atomic_path(tmp_path / "link") as tmp:
        tmp.mkdir()
        (tmp / "a.txt").write_text("2")
    assert (tmp_path / "link").is_symlink() and (tmp_path / "empty" / "a.txt").read_text() == "2"


def test_library_callers_cannot_replace_a_foreign_directory_either(tmp_path: Path) -> None:
    """atomic_path itself refuses (before the block and again at the swap), not only the CLI."""
    from spendlab.io import load_transactions
    from spendlab.jobs.describe import run_describe

    synth_transactions(tmp_path / "tx.csv", users=10, months=2, fmt="millions", seed=2)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    before = tree_state(tmp_path)
    with pytest.raises(UnsafeOutputError, match="did not make"):
        run_describe(load_transactions(str(tmp_path / "tx.csv"), "millions"), tmp_path / "mine")
    assert tree_state(tmp_path) == before

    out = tmp_path / "late"
    with pytest.raises(UnsafeOutputError, match="did not make"), atomic_path(out) as tmp:
        out.mkdir()  # someone else fills the target while spendlab works
        (out / "theirs.txt").write_text("x")
        tmp.mkdir()
    assert (out / "theirs.txt").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_temporary_left_by_a_killed_run_is_removed_by_the_next_run(tmp_path: Path) -> None:
    stale = tmp_path / f".out.{_dead_pid()}.abc123xy.tmp"
    (stale / "out").mkdir(parents=True)
    live = tmp_path / f".out.{os.getpid()}.zzz999qq.tmp"  # a writer still running (this process)
    live.mkdir()
    other = tmp_path / ".out.notapid.tmp"  # not spendlab's naming: left alone
    other.mkdir()
    with atomic_path(tmp_path / "out") as tmp:
        tmp.write_text("new")
    assert not stale.exists() and live.exists() and other.exists()
    assert (tmp_path / "out").read_text() == "new"


@pytest.mark.parametrize("swap", ["exchange", "rename-aside"])
def test_concurrent_writers_of_one_directory_output_each_swap_a_complete_version(
        tmp_path: Path, swap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both swaps: renameat2 RENAME_EXCHANGE (Linux) and the rename-aside fallback (elsewhere)."""
    import spendlab.io.atomic as atomic

    if swap == "rename-aside":
        monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    out = tmp_path / "out"
    n = 6
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def write(k: int) -> None:
        try:
            for _ in range(5):
                with atomic_path(out) as tmp:
                    tmp.mkdir()
                    for i in range(20):
                        (tmp / f"part{i}.txt").write_text(str(k))
                    barrier.wait(timeout=30) if _ == 0 else None
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    contents = {p.read_text() for p in out.glob("part*.txt")}
    assert len(list(out.glob("part*.txt"))) == 20 and len(contents) == 1  # one writer's complete version
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("kind", ["dir", "file"])
def test_check_output_accepts_new_paths_and_spendlabs_own(tmp_path: Path, kind: str) -> None:
    with chdir(tmp_path):
        assert check_output("new/out", kind=kind) == Path("new/out")  # type: ignore[arg-type]
        (tmp_path / "old").mkdir()
        (tmp_path / "old" / MARKER).write_text("x")
        (tmp_path / "old" / "summary.json").write_text("{}")
        if kind == "dir":
            check_output("old", kind="dir")
        else:
            with pytest.raises(UnsafeOutputError, match="is a directory"):
                check_output("old", kind="file")


def test_parent_directories_spendlab_creates_are_marked_as_its_own(tmp_path: Path) -> None:
    """A feature cache made under ``out/`` must not make ``--out out`` look like someone else's folder."""
    from spendlab.io.safe_out import prepare_output_dir

    prepare_output_dir(tmp_path / "out" / ".feature_cache")
    (tmp_path / "out" / ".feature_cache" / "features.parquet").write_text("x")
    prepare_output_dir(tmp_path / "out")  # not refused: spendlab made out/ on the way
    assert (tmp_path / "out" / MARKER).is_file() and (tmp_path / "out" / ".feature_cache" / MARKER).is_file()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's")
    prepare_output_dir(tmp_path / "mine" / "a" / "b")
    assert not (tmp_path / "mine" / MARKER).exists()  # a folder that was there stays the user's
    assert (tmp_path / "mine" / "a" / MARKER).is_file() and (tmp_path / "mine" / "a" / "b" / MARKER).is_file()
    with pytest.raises(UnsafeOutputError):
        prepare_output_dir(tmp_path / "mine")


@pytest.mark.slow
def test_a_tracking_store_given_inside_a_new_out_directory_does_not_make_it_foreign(tmp_path: Path) -> None:
    """The experiment claims --out before MLflow creates the store there (it used to refuse after the work).

    What is checked is the order of claiming --out and creating the store, not the data: a 100-user
    synthetic experiment (the concurrency test's) goes through the same steps as CDNOW, in less CPU."""
    out = tmp_path / "run"
    exp = write_experiment(tmp_path, models=["zero"], params={}, users=100)
    cli = [sys.executable, "-m", "spendlab.cli", "experiment", "run"]
    run = subprocess.run([*cli, str(exp), "--models", "zero", "--out",
                          str(out), "--tracking-uri", f"sqlite:///{out}/mlflow.db", "--no-feature-cache"],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert {"leaderboard.csv", "mlflow.db", MARKER} <= {p.name for p in out.iterdir()}
    run = subprocess.run([*cli, str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "new")],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 2 and not (tmp_path / "new").exists()  # a failed run leaves no directory it made
