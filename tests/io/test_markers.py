from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from gliomics.constants import MARKERS
from gliomics.errors import MarkerTableError, OutputError
from gliomics.io import MarkerRecord, parse_marker_value, read_markers, write_markers

UNKNOWN = ["", "   ", "nan", "NaN", "na", "NA", "n/a", "unknown", "Unknown"]
COMMON = {"1": 1, "0": 0, "1.0": 1, "0.0": 0, " 1 ": 1, "true": 1, "FALSE": 0, "yes": 1, "No": 0}
COMMON |= {"positive": 1, "Negative": 0}
MUTATION = {
    "mutant": 1,
    "Mutated": 1,
    "mut": 1,
    "wildtype": 0,
    "wild-type": 0,
    "wild type": 0,
    "WT": 0,
}
CODELETION = {
    "codeleted": 1,
    "co-deleted": 1,
    "codeletion": 1,
    "Co-Deletion": 1,
    "deleted": 1,
    "intact": 0,
    "non-codeleted": 0,
    "not codeleted": 0,
    "no codeletion": 0,
    "1p/19q-codeleted": 1,
    "1p/19q intact": 0,
}


@pytest.mark.parametrize("marker", MARKERS)
@pytest.mark.parametrize("raw", UNKNOWN)
def test_unknown_values(marker: str, raw: str) -> None:
    assert parse_marker_value(raw, marker=marker) is None


@pytest.mark.parametrize("marker", MARKERS)
@pytest.mark.parametrize(("raw", "expected"), COMMON.items())
def test_common_values(marker: str, raw: str, expected: int) -> None:
    assert parse_marker_value(raw, marker=marker) == expected


@pytest.mark.parametrize("marker", ["idh", "tert"])
@pytest.mark.parametrize(("raw", "expected"), MUTATION.items())
def test_mutation_synonyms(marker: str, raw: str, expected: int) -> None:
    assert parse_marker_value(raw, marker=marker) == expected
    with pytest.raises(ValueError):
        parse_marker_value(raw, marker="codel_1p19q")


@pytest.mark.parametrize(("raw", "expected"), CODELETION.items())
def test_codeletion_synonyms(raw: str, expected: int) -> None:
    assert parse_marker_value(raw, marker="codel_1p19q") == expected
    with pytest.raises(ValueError):
        parse_marker_value(raw, marker="idh")


@pytest.mark.parametrize(
    ("raw", "marker", "expected"),
    [("IDH-mutant", "idh", 1), ("IDH-wildtype", "idh", 0), ("idhwt", "idh", 0), ("TERTp-mutant", "tert", 1)],
)
def test_who_style_prefixes(raw: str, marker: str, expected: int) -> None:
    assert parse_marker_value(raw, marker=marker) == expected


@pytest.mark.parametrize("raw", ["maybe", "2", "0.5", "-1", "idh", "inf", "pos?"])
def test_unrecognised_values_raise(raw: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(raw))):
        parse_marker_value(raw, marker="idh")


def test_unknown_marker_name() -> None:
    with pytest.raises(ValueError, match="unknown marker"):
        parse_marker_value("1", marker="mgmt")


def _table(tmp_path: Path, text: str, name: str = "markers.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_read_markers(tmp_path: Path) -> None:
    path = _table(
        tmp_path,
        "\ufeffCase_ID,IDH,codel_1p19q,tert,age,sex,site,notes\n"
        "P-003,mutant,codeleted,,54,female,A,ok\n"
        "P-001,wildtype,intact,mutant,61.5,M,B,\n"
        "\n"
        "P-002,,,,,,,\n",
    )
    records = read_markers(path)
    assert list(records) == ["P-003", "P-001", "P-002"]  # file order
    assert records["P-003"] == MarkerRecord("P-003", 1, 1, None, age=54.0, sex="F", site="A")
    assert records["P-001"].to_dict() == {
        "case_id": "P-001",
        "idh": 0,
        "codel_1p19q": 0,
        "tert": 1,
        "age": 61.5,
        "sex": "M",
        "site": "B",
    }
    assert records["P-002"] == MarkerRecord("P-002", None, None, None)
    assert records["P-001"].label("tert") == 1 and records["P-002"].label("idh") is None
    with pytest.raises(ValueError):
        records["P-001"].label("mgmt")


def test_missing_marker_columns_mean_unknown(tmp_path: Path) -> None:
    records = read_markers(_table(tmp_path, "case_id,idh\nA,1\nB,0\n"))
    assert records["A"].codel_1p19q is None and records["A"].tert is None and records["B"].idh == 0


def test_semicolon_separated(tmp_path: Path) -> None:
    records = read_markers(_table(tmp_path, "case_id;idh;tert\nA;1;0\n"))
    assert records["A"].idh == 1 and records["A"].tert == 0


def test_unknown_value_names_row_case_and_value(tmp_path: Path) -> None:
    rows = [f"PHANTOM-A-{i:05d}-000,1,0,1" for i in range(5)] + ["PHANTOM-A-00005-000,maybe,0,1"]
    path = _table(tmp_path, "case_id,idh,codel_1p19q,tert\n" + "\n".join(rows) + "\n")
    expected = f"{path}: row 7 (case PHANTOM-A-00005-000): unknown idh value 'maybe'"
    with pytest.raises(MarkerTableError, match="^" + re.escape(expected) + "$"):
        read_markers(path)


def test_duplicate_case_id(tmp_path: Path) -> None:
    path = _table(tmp_path, "case_id,idh\nA,1\nX,0\nB,1\nX,1\n")
    with pytest.raises(MarkerTableError, match=re.escape(f"{path}: duplicate case_id 'X' in rows 3 and 5")):
        read_markers(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,idh\nA,1\n", "missing column 'case_id'"),
        ("case_id,age\nA,1\n", "none of the marker columns idh, codel_1p19q, tert found"),
        ("", "empty file"),
        ("\n  \n", "empty file"),
        ("case_id,idh,age\nA,1,forty\n", "row 2 (case A): unparseable age 'forty'"),
        ("case_id,idh,age\nA,1,-3\n", "row 2 (case A): unparseable age '-3'"),
        ("case_id,idh\n,1\n", "row 2: empty case_id"),
        ("case_id,idh,idh\nA,1,1\n", "repeated column(s) idh"),
        ("case_id,idh\nA,1,extra\n", "row 2 has 3 cells"),
    ],
)
def test_table_errors(tmp_path: Path, text: str, message: str) -> None:
    path = _table(tmp_path, text)
    with pytest.raises(MarkerTableError, match="^" + re.escape(f"{path}: ") + ".*" + re.escape(message)):
        read_markers(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MarkerTableError, match=re.escape(f"{tmp_path / 'none.csv'}: not found")):
        read_markers(tmp_path / "none.csv")


def test_header_only_is_an_empty_table(tmp_path: Path) -> None:
    assert read_markers(_table(tmp_path, "case_id,idh,codel_1p19q,tert\n")) == {}


def test_write_read_round_trip(tmp_path: Path) -> None:
    records = [
        MarkerRecord("B", 1, None, 0, age=40.0, sex="F", site="s1"),
        MarkerRecord("A", None, 1, None, age=33.25),
        MarkerRecord("C", 0, 0, 1),
    ]
    out = write_markers(records, tmp_path / "sub" / "markers.csv")
    assert out.read_text().splitlines()[:3] == [
        "case_id,idh,codel_1p19q,tert,age,sex,site",
        "B,1,,0,40,F,s1",
        "A,,1,,33.25,,",
    ]
    back = read_markers(out)
    assert list(back.values()) == records
    write_markers(back, out)  # a mapping is accepted too
    assert read_markers(out) == back
    assert [p.name for p in out.parent.iterdir()] == ["markers.csv"]


def test_write_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_replace(src, dst):
        raise OSError("read-only file system")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OutputError, match=re.escape(str(tmp_path / "m.csv"))):
        write_markers([MarkerRecord("A", 1, 0, None)], tmp_path / "m.csv")
    assert list(tmp_path.iterdir()) == []


def test_write_rejects_duplicates_and_record_validates() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        write_markers([MarkerRecord("A", 1, 0, None), MarkerRecord("A", 0, 0, None)], "unused.csv")
    with pytest.raises(ValueError, match="idh must be 0, 1 or None"):
        MarkerRecord("A", 2, 0, None)
