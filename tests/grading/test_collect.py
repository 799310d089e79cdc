"""Importing an LMS zip export: every naming style, and every rule (unmatched, duplicates, late,
roster, existing submissions, zip-slip, corrupt archives)."""

from __future__ import annotations

import stat
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import pytest
from llmcourse.grading.collect import CollectReport, collect_zip, report_text

A, NB = "01_tokenization", "tokenization"
UTC = UTC


def _nb(tag: str) -> str:
    return nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"# {tag}")]))


def _zip(path: Path, entries: list) -> Path:
    """entries: (name, text) or (name, text, date_time) or a ready ZipInfo with its text."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for entry in entries:
            name, text = entry[0], entry[1]
            info = (
                name
                if isinstance(name, zipfile.ZipInfo)
                else zipfile.ZipInfo(name, entry[2] if len(entry) > 2 else (2024, 3, 1, 12, 0, 0))
            )
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, text)
    return path


def _submitted(course: Path, student: str, notebook: str = NB) -> Path:
    return course / "submitted" / student / A / f"{notebook}.ipynb"


def _everything_under(path: Path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in path.rglob("*")}


def test_default_patterns_recognise_every_naming_style(tmp_path):
    z = _zip(
        tmp_path / "export.zip",
        [
            ("export/jsmith_12345_67890_tokenization.ipynb", _nb("jsmith")),  # Canvas
            ("export/dlow_LATE_111_222_Tokenization-1.ipynb", _nb("dlow")),  # Canvas, late resubmission
            ("tokenization_ajones.ipynb", _nb("ajones")),  # notebook first
            ("kpatel_tokenization (2).ipynb", _nb("kpatel")),  # student first, browser copy suffix
            ("bkim/tokenization.ipynb", _nb("bkim")),  # folder per student
            (f"all/clee/{A}/tokenization.ipynb", _nb("clee")),  # nbgrader layout
            ("export/jsmith_12345_67890_notes.ipynb", _nb("x")),  # not an expected notebook
            ("export/readme.txt", "hello"),
            ("bkim/tokenization.py", "print(1)"),
            ("__MACOSX/bkim/._tokenization.ipynb", "junk"),  # ignored
            ("export/", ""),  # a folder entry
        ],
    )
    course = tmp_path / "course"
    report = collect_zip(z, course, A, [NB])
    assert sorted(report.imported) == ["ajones", "bkim", "clee", "dlow", "jsmith", "kpatel"]
    assert all(files == ["tokenization.ipynb"] for files in report.imported.values())
    for student in report.imported:
        assert f"# {student}" in _submitted(course, student).read_text()
    assert sorted(report.unmatched) == [
        "bkim/tokenization.py",
        "export/jsmith_12345_67890_notes.ipynb",
        "export/readme.txt",
    ]
    assert report.problems == [] and report.duplicates == {} and report.late == {}
    # nbgrader's own timestamp format, readable by nbgrader
    from nbgrader.utils import parse_utc

    stamp = (course / "submitted" / "bkim" / A / "timestamp.txt").read_text()
    assert stamp.endswith(" UTC")
    assert parse_utc(stamp) == datetime(2024, 3, 1, 12, 0, 0).astimezone().astimezone(UTC).replace(tzinfo=None)


def test_custom_pattern_with_timestamp_in_the_name(tmp_path):
    z = _zip(
        tmp_path / "lms.zip",
        [
            ("ps1_bitdiddle_attempt_2016-01-30-15-00-00_tokenization.ipynb", _nb("b"), (2030, 1, 1, 0, 0, 0)),
            ("ps1_hacker_attempt_2016-01-29-09-30-00_other.ipynb", _nb("h")),
        ],
    )
    pattern = r".*_(?P<student_id>\w+)_attempt_(?P<timestamp>[0-9\-]+)_(?P<file>\w+)"
    due = datetime(2016, 1, 30, 12, 0, tzinfo=UTC)
    report = collect_zip(z, tmp_path / "c", A, ["tokenization.ipynb"], pattern=pattern, due=due)
    assert report.imported == {"bitdiddle": ["tokenization.ipynb"]}
    assert report.unmatched == ["ps1_hacker_attempt_2016-01-29-09-30-00_other.ipynb"]
    # the name's time wins over the entry's (far later) modification time
    assert (
        tmp_path / "c" / "submitted" / "bitdiddle" / A / "timestamp.txt"
    ).read_text() == "2016-01-30 15:00:00.000000 UTC"
    assert report.late["bitdiddle"].startswith("3h 0m late")


def test_a_pattern_must_name_both_groups(tmp_path):
    z = _zip(tmp_path / "a.zip", [("x_tokenization.ipynb", _nb("x"))])
    with pytest.raises(ValueError, match="student_id"):
        collect_zip(z, tmp_path / "c", A, [NB], pattern=r"(?P<file>\w+)\.ipynb")
    with pytest.raises(ValueError, match="bad pattern"):
        collect_zip(z, tmp_path / "c", A, [NB], pattern=r"(?P<student_id>(\w+)")


def test_duplicates_keep_the_newest_and_report_both(tmp_path):
    z = _zip(
        tmp_path / "dup.zip",
        [
            ("jsmith_1_2_tokenization.ipynb", _nb("new"), (2024, 3, 2, 9, 0, 0)),
            ("jsmith_1_3_tokenization-1.ipynb", _nb("old"), (2024, 3, 1, 9, 0, 0)),
            ("ajones/tokenization.ipynb", _nb("first"), (2024, 3, 1, 9, 0, 0)),
            ("ajones/tokenization (1).ipynb", _nb("second"), (2024, 3, 1, 9, 0, 0)),  # same time
        ],
    )
    course = tmp_path / "c"
    report = collect_zip(z, course, A, [NB])
    assert "# new" in _submitted(course, "jsmith").read_text()
    assert report.duplicates["jsmith/tokenization.ipynb"] == [
        "jsmith_1_2_tokenization.ipynb",
        "jsmith_1_3_tokenization-1.ipynb",
    ]
    # equal times: the later entry in the archive wins, and a problem says the choice was a guess
    assert "# second" in _submitted(course, "ajones").read_text()
    assert report.duplicates["ajones/tokenization.ipynb"][0] == "ajones/tokenization (1).ipynb"
    assert any("ajones" in p and "cannot tell" in p for p in report.problems)
    assert not any("jsmith" in p for p in report.problems)


def test_late_submissions_are_imported_and_reported(tmp_path):
    due = datetime(2024, 3, 1, 23, 59, tzinfo=UTC)
    z = _zip(
        tmp_path / "late.zip",
        [
            ("ontime/tokenization.ipynb", _nb("ontime"), (2024, 3, 1, 23, 0, 0)),
            ("late/tokenization.ipynb", _nb("late"), (2024, 3, 3, 2, 4, 0)),
        ],
    )
    report = collect_zip(z, tmp_path / "c", A, [NB], due=due)
    assert sorted(report.imported) == ["late", "ontime"]
    assert list(report.late) == ["late"]
    assert report.late["late"].startswith("1d 2h 5m late")  # naive zip times read in due's timezone
    # and without the mtime there is no time at all: nothing is late, no timestamp.txt
    report = collect_zip(z, tmp_path / "c2", A, [NB], due=due, use_mtime=False)
    assert report.late == {} and not (tmp_path / "c2" / "submitted" / "late" / A / "timestamp.txt").exists()


def test_roster_unknown_students_imported_unless_strict(tmp_path):
    z = _zip(
        tmp_path / "r.zip",
        [
            ("jsmith/tokenization.ipynb", _nb("jsmith")),
            ("JDoe/tokenization.ipynb", _nb("jdoe")),  # on the roster up to case
            ("stranger/tokenization.ipynb", _nb("stranger")),
        ],
    )
    roster = ["jsmith", "jdoe", "absent"]
    report = collect_zip(z, tmp_path / "c", A, [NB], roster=roster)
    assert report.unknown_students == ["stranger"]
    assert sorted(report.imported) == ["jdoe", "jsmith", "stranger"]
    report = collect_zip(z, tmp_path / "strict", A, [NB], roster=roster, strict=True)
    assert report.unknown_students == ["stranger"]
    assert sorted(report.imported) == ["jdoe", "jsmith"]
    assert not (tmp_path / "strict" / "submitted" / "stranger").exists()
    assert any("stranger" in p and "roster" in p for p in report.problems)


def test_existing_submissions_are_kept_unless_forced(tmp_path):
    course = tmp_path / "c"
    _submitted(course, "jsmith").parent.mkdir(parents=True)
    _submitted(course, "jsmith").write_text(_nb("earlier import"))
    z = _zip(tmp_path / "e.zip", [("jsmith/tokenization.ipynb", _nb("zip")), ("ajones/tokenization.ipynb", _nb("aj"))])
    report = collect_zip(z, course, A, [NB])
    assert "# earlier import" in _submitted(course, "jsmith").read_text()
    assert report.imported == {"ajones": ["tokenization.ipynb"]}
    assert any("jsmith" in p and "already exists" in p for p in report.problems)
    report = collect_zip(z, course, A, [NB], force=True)
    assert "# zip" in _submitted(course, "jsmith").read_text()
    assert sorted(report.imported) == ["ajones", "jsmith"] and report.problems == []


def test_zip_slip_and_absolute_paths_are_never_written(tmp_path):
    link = zipfile.ZipInfo("linky/tokenization.ipynb", (2024, 3, 1, 12, 0, 0))
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    z = _zip(
        tmp_path / "evil.zip",
        [
            ("../../escaped/tokenization.ipynb", _nb("evil1")),
            ("ok/../../escaped2/tokenization.ipynb", _nb("evil2")),
            ("/tmp/absolute/tokenization.ipynb", _nb("evil3")),
            ("C:/absolute/tokenization.ipynb", _nb("evil4")),
            ("..\\..\\win\\tokenization.ipynb", _nb("evil5")),
            (link, "/etc/passwd"),
            ("good/tokenization.ipynb", _nb("good")),
        ],
    )
    root = tmp_path / "sandbox"
    course = root / "course"
    report = collect_zip(z, course, A, [NB])
    assert report.imported == {"good": ["tokenization.ipynb"]}
    assert len(report.problems) == 6, report.problems
    assert all("not written" in p for p in report.problems)
    assert _everything_under(root) == {
        "course",
        "course/submitted",
        "course/submitted/good",
        f"course/submitted/good/{A}",
        f"course/submitted/good/{A}/tokenization.ipynb",
        f"course/submitted/good/{A}/timestamp.txt",
    }
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/absolute").exists()


def test_a_pattern_cannot_smuggle_a_path_in_the_student_id(tmp_path):
    z = _zip(tmp_path / "p.zip", [("sub-..-tokenization.ipynb", _nb("x")), ("sub-a.b-tokenization.ipynb", _nb("y"))])
    report = collect_zip(z, tmp_path / "c", A, [NB], pattern=r"sub-(?P<student_id>[^-]+)-(?P<file>.*)")
    assert report.imported == {"a.b": ["tokenization.ipynb"]}
    assert any("'..'" in p for p in report.problems)
    with pytest.raises(ValueError):
        collect_zip(z, tmp_path / "c", "../up", [NB])


@pytest.mark.parametrize("damage", ["garbage", "truncated", "crc"])
def test_corrupt_zip_is_a_clear_value_error_and_writes_nothing(tmp_path, damage):
    good = _zip(tmp_path / "good.zip", [("a/tokenization.ipynb", _nb("a" * 2000)), ("b/tokenization.ipynb", _nb("b"))])
    data = bytearray(good.read_bytes())
    if damage == "garbage":
        data = bytearray(b"this is not a zip file at all" * 10)
    elif damage == "truncated":
        data = data[: len(data) // 2]
    else:  # flip a byte inside the first entry's compressed data: only the CRC check can tell
        offset = 30 + len("a/tokenization.ipynb") + 10
        data[offset] ^= 0xFF
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="zip"):
        collect_zip(bad, tmp_path / "c", A, [NB])
    assert not (tmp_path / "c" / "submitted").exists()


def test_missing_zip_and_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError):
        collect_zip(tmp_path / "nope.zip", tmp_path / "c", A, [NB])
    z = _zip(tmp_path / "a.zip", [("a/tokenization.ipynb", _nb("a"))])
    with pytest.raises(ValueError):
        collect_zip(z, tmp_path / "c", A, [])


def test_oversized_and_invalid_entries(tmp_path):
    z = _zip(tmp_path / "big.zip", [("big/tokenization.ipynb", "x" * 5000), ("notjson/tokenization.ipynb", "{ oops")])
    report = collect_zip(z, tmp_path / "c", A, [NB], max_bytes=1000)
    assert "big" not in report.imported
    assert any("big/" in p and "limit" in p for p in report.problems)
    # not a notebook, but imported: the grading precheck turns it into a clear zero
    assert report.imported == {"notjson": ["tokenization.ipynb"]}
    assert any("notjson" in p and "not a valid notebook" in p for p in report.problems)


def test_report_text_mentions_every_outcome():
    report = CollectReport(
        imported={"jsmith": ["tokenization.ipynb"]},
        unmatched=["readme.txt"],
        duplicates={"jsmith/tokenization.ipynb": ["new.ipynb", "old.ipynb"]},
        late={"jsmith": "2h 0m late"},
        unknown_students=["stranger"],
        problems=["../x: unsafe path"],
    )
    text = report_text(report)
    for needle in [
        "imported 1 notebook(s) from 1 student(s)",
        "readme.txt",
        "kept new.ipynb",
        "old.ipynb",
        "2h 0m late",
        "stranger",
        "../x: unsafe path",
    ]:
        assert needle in text
