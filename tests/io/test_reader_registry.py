"""A reader format is added in one place (``READERS``): the loader, the experiment's ``dataset.format``
and the error for an unknown format all read that one registry."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pydantic
import pytest

from spendlab.errors import SpendlabError
from spendlab.forecast.protocol import DatasetSpec
from spendlab.io.load import FORMATS, READERS, load_transactions


def read_psv(path, config, sink, rows) -> None:  # type: ignore[no-untyped-def]
    """``user|YYYY-MM-DD|amount`` lines; a line without three fields is counted and rejected."""
    from spendlab.io.rejects import RejectRecord

    for line, text in enumerate(Path(path).read_text().splitlines(), start=1):
        fields = text.split("|")
        if len(fields) != 3:
            sink.file_report.rows_in += 1
            sink.reject(RejectRecord(str(path), line, "", "FIELD_COUNT", text, "expected 3 fields"))
            continue
        rows.add(fields[0], dt.datetime.fromisoformat(fields[1]).replace(tzinfo=dt.UTC), float(fields[2]), line)
        sink.file_report.count(None, 1)


def test_the_builtin_formats_are_the_registry() -> None:
    assert FORMATS == tuple(READERS) == ("millions", "cdnow", "generic")


def test_a_registered_format_loads_and_is_a_valid_dataset_format(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tx.psv"
    path.write_text("u1|2024-01-05|12.50\nbroken line\nu2|2024-01-07|99.90\n")
    with pytest.raises(SpendlabError, match="unknown format 'psv'; choose one of millions, cdnow, generic"):
        load_transactions(str(path), "psv")
    with pytest.raises(pydantic.ValidationError, match="unknown format 'psv'"):
        DatasetSpec(input=str(path), format="psv")
    monkeypatch.setitem(READERS, "psv", read_psv)
    tx = load_transactions(str(path), "psv")
    assert (tx.report.rows_in, tx.report.accepted, tx.report.rejected) == (3, 2, 1)
    assert tx.report.rejects[0].line == 2
    frame = tx.to_pandas()
    assert frame["user_id"].tolist() == ["u1", "u2"] and frame["amount"].sum() == pytest.approx(112.40)
    assert DatasetSpec(input=str(path), format="psv").format == "psv"
