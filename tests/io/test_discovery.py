"""Issue 15 item 5: input discovery never double-counts or skips silently."""

from __future__ import annotations

import gzip
import os
import shutil

import pytest

from spendlab.errors import InputFileError, SpendlabError
from spendlab.io.load import validation_summary
from tests.conftest import load, millions_csv

NOV = millions_csv([("-10.00", "2021-11-03 9:00:00", "1"), ("-5.00", "2021-11-04 9:00:00", "2")])
DEC = millions_csv([("-20.00", "2021-12-03 9:00:00", "1")])


@pytest.fixture
def months(tmp_path):
    d = tmp_path / "exports"
    d.mkdir()
    (d / "2021-11.csv").write_bytes(NOV)
    (d / "2021-12.csv").write_bytes(DEC)
    return d


def test_a_latest_symlink_does_not_count_a_month_twice_and_is_listed_as_duplicate(months):
    os.symlink(months / "2021-12.csv", months / "latest.csv")
    tx = load(months)
    assert tx.report.rows_in == 3 and validation_summary(tx)["total_spend"] == 35.0
    assert [f.file.rsplit("/", 1)[-1] for f in tx.report.files] == ["2021-11.csv", "2021-12.csv"]
    assert len(tx.report.duplicates) == 1 and "latest.csv: same file as" in tx.report.duplicates[0]
    assert "duplicates" in tx.report.as_dict()


def test_a_recursive_glob_through_a_symlinked_parent_reads_each_real_file_once(tmp_path, months):
    os.symlink(months, tmp_path / "mirror")
    tx = load(f"{tmp_path}/**/*.csv")
    assert tx.report.rows_in == 3 and len(tx.report.files) == 2
    assert len(tx.report.duplicates) == 2


def test_a_directory_symlink_loop_ends(months):
    os.symlink(months, months / "loop")
    tx = load(months)
    assert tx.report.rows_in == 3


def test_gzip_csv_is_read_like_the_plain_file(months, tmp_path):
    plain = load(months)
    gz_dir = tmp_path / "gz"
    gz_dir.mkdir()
    for f in months.iterdir():
        (gz_dir / (f.name + ".gz")).write_bytes(gzip.compress(f.read_bytes()))
    packed = load(gz_dir)
    assert packed.report.rows_in == plain.report.rows_in == 3
    cols = ["user_id", "ts", "amount", "line"]
    assert packed.to_pandas()[cols].equals(plain.to_pandas()[cols])
    single = load(gz_dir / "2021-11.csv.gz")
    assert single.report.accepted == 2 and single.name == "2021-11"


def test_a_corrupt_gzip_fails_the_file_naming_it(tmp_path):
    bad = tmp_path / "x.csv.gz"
    bad.write_bytes(gzip.compress(NOV)[:-12] + b"garbage!")
    with pytest.raises(InputFileError) as exc:
        load(bad)
    assert exc.value.error_type == "CORRUPT_GZIP" and str(bad) in str(exc.value)


def test_hidden_and_appledouble_files_are_skipped_with_a_note(months):
    (months / "._2021-12.csv").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    (months / ".~lock.2021-11.csv#").write_bytes(b"x")
    (months / ".hidden").mkdir()
    (months / ".hidden" / "old.csv").write_bytes(NOV)
    (months / "README.md").write_text("notes")
    tx = load(months)
    assert tx.report.rows_in == 3
    skipped = "\n".join(tx.report.skipped)
    assert "._2021-12.csv: hidden file" in skipped and "old.csv: hidden file" in skipped
    assert "README.md: not an input file" in skipped


@pytest.mark.timeout(30)
def test_a_fifo_is_refused_when_named_and_skipped_in_a_directory_without_hanging(months):
    fifo = months / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(SpendlabError, match="FIFO"):
        load(fifo)
    tx = load(months)
    assert tx.report.rows_in == 3 and any("pipe.csv: a FIFO" in s for s in tx.report.skipped)


@pytest.mark.timeout(30)
def test_a_device_is_refused(tmp_path):
    with pytest.raises(SpendlabError, match="a device"):
        load("/dev/null")
    os.symlink("/dev/zero", tmp_path / "zero.csv")
    with pytest.raises(SpendlabError, match="skipped: .*zero.csv: a device"):  # a glob matching only a device
        load(f"{tmp_path}/*.csv")


def test_a_broken_link_is_listed_not_silently_dropped(months):
    os.symlink(months / "gone.csv", months / "dangling.csv")
    tx = load(months)
    assert any("dangling.csv: cannot be read" in s for s in tx.report.skipped)


def test_the_cli_json_report_lists_skipped_and_duplicate_inputs(months):
    os.symlink(months / "2021-12.csv", months / "latest.csv")
    shutil.copy(months / "2021-11.csv", months / "._2021-11.csv")
    summary = validation_summary(load(months))
    assert summary["duplicates"] and summary["skipped"]


def test_validate_prints_one_note_per_skipped_or_duplicate_input(months, monkeypatch, capsys):
    import sys

    from spendlab.cli import main

    os.symlink(months / "2021-12.csv", months / "latest.csv")
    (months / "._2021-11.csv").write_bytes(b"\x00\x05\x16\x07")
    monkeypatch.setattr(sys, "argv", ["spendlab", "validate", str(months), "-f", "millions"])
    main()
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: ")]
    assert len(notes) == 2
    assert any("latest.csv: same file as" in n for n in notes) and any("._2021-11.csv: hidden" in n for n in notes)
