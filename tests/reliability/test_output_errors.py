"""An output the file system refuses is one line naming it, with nothing half-written (fast, in-process
members of the class the slow fault matrix runs end to end)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import duckdb
import pytest

from spendlab.io.atomic import OutputWriteError, atomic_path, atomic_write_text
from spendlab.io.rejects import RejectRecord, write_rejects_csv

FAILURES = [
    OSError(errno.ENOSPC, "No space left on device"),
    OSError(errno.EFBIG, "File too large"),
    OSError(errno.EROFS, "Read-only file system"),
    OSError(errno.EDQUOT, "Disk quota exceeded"),
    OSError("[Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on device"),  # Arrow's shape
    duckdb.IOException('IO Error: Could not write file "x": No space left on device'),
]


@pytest.mark.parametrize("failure", FAILURES, ids=lambda e: type(e).__name__ + "-" + str(getattr(e, "errno", "")))
@pytest.mark.parametrize("existing", [None, "the previous output\n"])
def test_a_refused_write_names_the_output_and_leaves_the_previous_one(tmp_path: Path, failure: BaseException,
                                                                      existing: str | None) -> None:
    target = tmp_path / "out" / "report.txt"
    target.parent.mkdir()
    if existing is not None:
        target.write_text(existing)
    with pytest.raises(OutputWriteError) as err, atomic_path(target) as tmp:
        tmp.write_text("half of it")
        raise failure
    assert str(err.value).startswith(f"{target}: cannot write the output") and "\n" not in str(err.value)
    assert (target.read_text() if target.exists() else None) == existing
    assert sorted(os.listdir(target.parent)) == ([] if existing is None else ["report.txt"])


def test_rejects_on_a_full_disk_name_the_rejects_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "rejects.csv"
    real_open = open

    def full(path, mode="r", *args, **kwargs):
        if "w" in mode and ".tmp" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", full)
    with pytest.raises(OutputWriteError, match=f"^{target}: cannot write the output .No space left on device."):
        write_rejects_csv([RejectRecord("a.csv", 2, "amount", "AMOUNT_FORMAT", "x", "bad")], target)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def test_an_input_error_inside_the_block_is_not_blamed_on_the_output(tmp_path: Path) -> None:
    elsewhere = tmp_path / "inputs" / "a.csv"
    with pytest.raises(PermissionError) as err, atomic_path(tmp_path / "out" / "x.txt"):
        raise PermissionError(errno.EACCES, "Permission denied", str(elsewhere))
    assert err.value.filename == str(elsewhere)
    atomic_write_text(tmp_path / "out" / "x.txt", "ok")
    assert (tmp_path / "out" / "x.txt").read_text() == "ok"
