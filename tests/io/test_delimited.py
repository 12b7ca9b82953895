"""The shared reader of delimited tables: delimiter, BOM, blank rows, errors naming the file."""

from __future__ import annotations

import pytest

from gliomics.errors import InputError, MarkerTableError
from gliomics.io.delimited import read_delimited, write_rows


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_delimiter_bom_and_blank_rows(tmp_path, sep):
    path = tmp_path / "t.csv"
    path.write_text("\ufeffCase_ID" + sep + "IDH\n\nA" + sep + "1\n" + sep + "\nB" + sep + "0\n", encoding="utf-8")
    header, rows = read_delimited(path)
    assert header == ["case_id", "idh"]
    assert rows == [(3, ["A", "1"]), (5, ["B", "0"])]


def test_errors_name_the_file_with_the_given_type(tmp_path):
    with pytest.raises(MarkerTableError, match="missing.csv: not found"):
        read_delimited(tmp_path / "missing.csv", error=MarkerTableError)
    (tmp_path / "empty.csv").write_text(" \n")
    with pytest.raises(InputError, match="empty.csv: empty file"):
        read_delimited(tmp_path / "empty.csv")


def test_write_rows_takes_every_column_in_order_and_leaves_missing_cells_empty(tmp_path):
    path = write_rows(tmp_path / "rows.csv", [{"a": 1, "b": 2.5}, {"a": 3, "c": "x"}])
    assert path.read_text().splitlines() == ["a,b,c", "1,2.5,", "3,,x"]
    assert [p.name for p in tmp_path.iterdir()] == ["rows.csv"]  # no temporary file left behind
