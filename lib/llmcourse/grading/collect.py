"""Import a learning-management-system zip export into the course's ``submitted/`` folder.

Like nbgrader's ``zip_collect``: an LMS (Canvas, Moodle, ...) exports one zip holding one file per
student and notebook, the student's id somewhere in each file's path. :func:`collect_zip` finds the
student id and the notebook in each entry with a regular expression, and writes
``<course>/submitted/<student>/<assignment>/<notebook>.ipynb`` (plus nbgrader's ``timestamp.txt``
when the submission time is known), so the rest of the pipeline and plain ``nbgrader`` see an
ordinary course directory.

The extraction rule is a regex with the named groups ``student_id`` and ``file`` (and optionally
``timestamp``), searched in each entry's path inside the zip (``/`` separators). The literal text
``{notebook}`` in a pattern stands for "any expected notebook name" and ``{assignment}`` for the
assignment's name. Without a pattern the :data:`DEFAULT_PATTERNS` are tried in order; they
recognise::

    jsmith/01_tokenization/tokenization.ipynb         nbgrader's own layout
    jsmith/tokenization.ipynb                         one folder per student
    jsmith_12345_67890_tokenization.ipynb             Canvas (login_userid_submissionid_file; _LATE_ too)
    jsmith_tokenization.ipynb                         student first
    tokenization_jsmith.ipynb                         notebook first

Any folder may wrap them (``export/...``), the notebook name may carry the resubmission suffix an
LMS adds (``tokenization-1.ipynb``, ``tokenization (2).ipynb``) and case does not matter.

Rules (each outcome lands in the :class:`CollectReport`):

* an entry whose name matches no expected notebook or no student: ``unmatched``;
* two entries for the same student and notebook: ``duplicates`` (the newest is kept, both are
  reported; with equal or unknown times the one later in the archive wins and a problem says so);
* a submission time after ``due``: ``late`` (still imported);
* a student id not in ``roster``: ``unknown_students`` (still imported unless ``strict=True``;
  an id that matches a roster id up to case is spelled as in the roster);
* an absolute entry path or one with ``..`` (zip-slip), a symlink entry, an unsafe student id or an
  oversized entry is never written anywhere: ``problems``;
* an existing submission is kept unless ``force=True``: ``problems``;
* a damaged or non-zip file: ``ValueError`` before anything is written.

Times: a ``timestamp`` group in the pattern wins over the entry's modification time (many LMS set
every mtime to the export time; pass ``use_mtime=False`` then). A time without a timezone is read in
``due``'s timezone when ``due`` has one, else in the machine's local time. ``timestamp.txt`` gets
nbgrader's default format in UTC (``2024-03-01 14:05:00.000000 UTC``).
"""

from __future__ import annotations

import dataclasses
import stat
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from ..toolbox.packaged import write_atomic
from .collect_rules import (
    DEFAULT_PATTERNS,
    SAFE_ID,
    TIMESTAMP_FORMAT,
    aware,
    compile_patterns,
    duration,
    entry_time,
    inside,
    is_junk,
    looks_like_notebook,
    match_entry,
    notebook_names,
    read_limited,
    safe_component,
    safe_entry_name,
)
from .safe_files import describe, kind

__all__ = ["CollectReport", "DEFAULT_PATTERNS", "collect_zip", "report_text"]


@dataclasses.dataclass
class CollectReport:
    imported: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # student -> notebook files written
    unmatched: list[str] = dataclasses.field(default_factory=list)  # zip entries
    duplicates: dict[str, list[str]] = dataclasses.field(
        default_factory=dict
    )  # "student/nb.ipynb" -> entries, kept first
    late: dict[str, str] = dataclasses.field(default_factory=dict)  # student -> how late
    unknown_students: list[str] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Candidate:
    entry: zipfile.ZipInfo
    student: str
    notebook: str
    when: datetime | None
    order: int


def collect_zip(
    zip_path,
    course_root,
    assignment: str,
    notebooks: list[str],
    *,
    pattern: str | None = None,
    roster: list[str] | None = None,
    due: datetime | None = None,
    force: bool = False,
    strict: bool = False,
    use_mtime: bool = True,
    max_bytes: int = 50 * 2**20,
) -> CollectReport:
    """Import ``zip_path`` into ``<course_root>/submitted/<student>/<assignment>/`` (see the module doc).

    ``pattern`` may also be a list of patterns, tried in order. ``strict=True`` skips students who
    are not in ``roster``. Entries larger than ``max_bytes`` are skipped (a zip bomb is not a notebook).
    """
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise FileNotFoundError(f"{zip_path} does not exist")
    if not safe_component(assignment):
        raise ValueError(f"assignment {assignment!r} is not a plain folder name")
    wanted = notebook_names(notebooks)
    patterns = compile_patterns(pattern, assignment, wanted)
    course_root = Path(course_root)
    submitted = (course_root / "submitted").resolve()
    roster_ids = {r.lower(): r for r in roster} if roster is not None else None
    report = CollectReport()

    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ValueError(f"{zip_path} is not a readable zip file ({e})") from e
    with zf:
        try:
            bad = zf.testzip()  # reads every entry and checks its CRC before anything is written
        except Exception as e:  # noqa: BLE001 - zlib.error, lzma errors, encrypted entries, bad headers ...
            raise ValueError(f"{zip_path} is a damaged or unreadable zip file ({type(e).__name__}: {e})") from e
        if bad is not None:
            raise ValueError(f"{zip_path} is a damaged zip file: entry {bad!r} fails its checksum")

        candidates: dict[tuple[str, str], list[_Candidate]] = {}
        unknown: set[str] = set()
        for order, info in enumerate(zf.infolist()):
            name = info.filename
            if info.is_dir() or is_junk(name):
                continue
            if not safe_entry_name(name):
                report.problems.append(f"{name}: unsafe path (absolute or '..'); not written")
                continue
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                report.problems.append(f"{name}: a symbolic link, not a notebook; not written")
                continue
            if stat.S_IFMT(mode) and not stat.S_ISREG(mode):  # a FIFO, socket or device recorded in the zip
                report.problems.append(f"{name}: {describe(mode)}, not a notebook; not written")
                continue
            found = match_entry(patterns, name.replace("\\", "/"), wanted)
            if found is None:
                report.unmatched.append(name)
                continue
            student, notebook, stamp = found
            if not SAFE_ID.match(student) or student in {".", ".."}:
                report.problems.append(f"{name}: student id {student!r} is not a safe folder name; not written")
                continue
            if info.file_size > max_bytes:
                report.problems.append(
                    f"{name}: {info.file_size} bytes is over the {max_bytes}-byte limit; not written"
                )
                continue
            if roster_ids is not None and student not in roster_ids.values():
                if student.lower() in roster_ids:
                    student = roster_ids[student.lower()]
                else:
                    unknown.add(student)
                    if strict:
                        report.problems.append(
                            f"{name}: student {student!r} is not on the roster; not written (strict)"
                        )
                        continue
            when = entry_time(name, stamp, info, due, use_mtime, report)
            candidates.setdefault((student, notebook), []).append(_Candidate(info, student, notebook, when, order))
        report.unknown_students = sorted(unknown)

        latest: dict[str, datetime] = {}
        for (student, notebook), cands in sorted(candidates.items()):
            keep = _pick_newest(cands)
            if len(cands) > 1:
                others = sorted((c for c in cands if c is not keep), key=lambda c: c.order)
                report.duplicates[f"{student}/{notebook}.ipynb"] = [keep.entry.filename] + [
                    c.entry.filename for c in others
                ]
                times = [c.when for c in cands]
                if None in times or times.count(keep.when) > 1:
                    report.problems.append(
                        f"{student}/{notebook}.ipynb: cannot tell which of {len(cands)} entries is "
                        f"newest; kept the last in the archive, {keep.entry.filename}"
                    )
            dest = submitted / student / assignment / f"{notebook}.ipynb"
            if not inside(dest, submitted) or _through_link(dest, submitted):
                report.problems.append(f"{keep.entry.filename}: would be written outside {submitted}; not written")
                continue
            if dest.exists() and not force:
                report.problems.append(
                    f"{student}/{assignment}/{notebook}.ipynb already exists; kept it (force=True replaces it)"
                )
                continue
            data = read_limited(zf, keep.entry, max_bytes)
            if data is None:
                report.problems.append(f"{keep.entry.filename}: over the {max_bytes}-byte limit; not written")
                continue
            write_file(dest, data)
            if not looks_like_notebook(data):
                report.problems.append(
                    f"{student}/{notebook}.ipynb is not a valid notebook (imported; grading will say so)"
                )
            report.imported.setdefault(student, []).append(f"{notebook}.ipynb")
            if keep.when is not None and (student not in latest or keep.when > latest[student]):
                latest[student] = keep.when

        for student, when in sorted(latest.items()):
            stamp_path = submitted / student / assignment / "timestamp.txt"
            write_file(stamp_path, when.astimezone(UTC).strftime(TIMESTAMP_FORMAT).encode())
            if due is not None and when > aware(due, None):
                report.late[student] = (
                    f"{duration(when - aware(due, None))} late (submitted {when.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC)"
                )
    return report


def report_text(report: CollectReport) -> str:
    """A short readable summary for the command line."""
    n_files = sum(len(v) for v in report.imported.values())
    lines = [f"imported {n_files} notebook(s) from {len(report.imported)} student(s)"]
    for student, files in sorted(report.imported.items()):
        lines.append(f"  {student}: {', '.join(files)}")
    if report.late:
        lines.append(f"late ({len(report.late)}):")
        lines += [f"  {s}: {how}" for s, how in sorted(report.late.items())]
    if report.duplicates:
        lines.append(f"duplicates ({len(report.duplicates)}), newest kept:")
        for key, entries in sorted(report.duplicates.items()):
            lines.append(f"  {key}: kept {entries[0]}; ignored {', '.join(entries[1:])}")
    if report.unknown_students:
        lines.append(f"not on the roster ({len(report.unknown_students)}): {', '.join(report.unknown_students)}")
    if report.unmatched:
        lines.append(f"unmatched entries ({len(report.unmatched)}):")
        lines += [f"  {e}" for e in report.unmatched]
    if report.problems:
        lines.append(f"problems ({len(report.problems)}):")
        lines += [f"  {p}" for p in report.problems]
    return "\n".join(lines)


def _pick_newest(cands: list[_Candidate]) -> _Candidate:
    # newest time wins; unknown times sort first; ties go to the entry later in the archive
    return max(cands, key=lambda c: (c.when is not None, c.when or datetime.min.replace(tzinfo=UTC), c.order))


def _through_link(dest: Path, root: Path) -> bool:
    """Whether a folder on the way from ``root`` to ``dest`` is a link (``submitted/bob`` linked to
    ``submitted/alice`` stays inside ``root`` and would still write alice's notebook)."""
    folder = dest.parent
    while folder != root and root in folder.parents:
        if kind(folder) not in ("a folder", "missing"):
            return True
        folder = folder.parent
    return False


def write_file(dest: Path, data: bytes) -> None:
    """Atomically, so a grader reading the folder sees the old or the new notebook, never half."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(dest, data)
