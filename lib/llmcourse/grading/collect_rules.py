"""How :mod:`llmcourse.grading.collect` reads a zip entry: which student, which notebook, when, and
whether it is safe to write. The patterns, names and time formats of the LMS exports we recognise."""

from __future__ import annotations

import json
import re
import zipfile
from datetime import datetime
from pathlib import Path, PurePosixPath

RESUBMIT = r"(?:-\d+| ?\(\d+\))?"
DEFAULT_PATTERNS: tuple[str, ...] = (
    # nbgrader layout: <student>/<assignment>/<notebook>.ipynb
    r"(?:^|/)(?P<student_id>[^/]+)/{assignment}/(?P<file>{notebook}" + RESUBMIT + r"\.ipynb)$",
    # one folder per student: <student>/<notebook>.ipynb
    r"(?:^|/)(?P<student_id>[^/]+)/(?P<file>{notebook}" + RESUBMIT + r"\.ipynb)$",
    # Canvas: <login>[_LATE]_<userid>_<submissionid>_<notebook>.ipynb
    r"(?:^|/)(?P<student_id>[^/_]+)(?:_LATE)?(?:_\d+)+_(?P<file>{notebook}" + RESUBMIT + r"\.ipynb)$",
    # <student>_<notebook>.ipynb
    r"(?:^|/)(?P<student_id>[^/_]+)_(?P<file>{notebook}" + RESUBMIT + r"\.ipynb)$",
    # <notebook>_<student>.ipynb
    r"(?:^|/)(?P<file>{notebook})_(?P<student_id>[^/]+?)" + RESUBMIT + r"\.ipynb$",
)

# Student ids become folder names: letters, digits and a few safe marks only.
SAFE_ID = re.compile(r"^[\w@+-][\w.@+-]*$")
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f %Z"  # nbgrader's Exchange.timestamp_format default
NAME_TIME_FORMATS = (
    "%Y-%m-%d-%H-%M-%S",
    "%Y-%m-%d_%H-%M-%S",
    "%Y%m%d%H%M%S",
    "%Y%m%d-%H%M%S",
    "%Y%m%d_%H%M%S",
    "%Y-%m-%d-%H-%M",
    "%Y-%m-%d",
)


def notebook_names(notebooks: list[str]) -> list[str]:
    if isinstance(notebooks, str):
        notebooks = [notebooks]
    names = [n[: -len(".ipynb")] if n.endswith(".ipynb") else n for n in notebooks]
    if not names:
        raise ValueError("no notebooks given: which notebooks does the assignment expect?")
    for n in names:
        if not safe_component(n):
            raise ValueError(f"notebook name {n!r} is not a plain file name")
    return names


def compile_patterns(pattern, assignment: str, notebooks: list[str]) -> list[re.Pattern]:
    user = pattern is not None
    raw = DEFAULT_PATTERNS if pattern is None else ([pattern] if isinstance(pattern, str) else list(pattern))
    alternation = "(?:" + "|".join(re.escape(n) for n in sorted(notebooks, key=len, reverse=True)) + ")"
    compiled = []
    for p in raw:
        text = p.replace("{notebook}", alternation).replace("{assignment}", re.escape(assignment))
        try:
            rx = re.compile(text, 0 if user else re.IGNORECASE)
        except re.error as e:
            raise ValueError(f"bad pattern {p!r}: {e}") from e
        missing = {"student_id", "file"} - set(rx.groupindex)
        if missing:
            raise ValueError(f"pattern {p!r} lacks the named group(s) {', '.join(sorted(missing))}")
        compiled.append(rx)
    return compiled


def match_entry(patterns, name: str, notebooks: list[str]) -> tuple[str, str, str | None] | None:
    for rx in patterns:
        m = rx.search(name)
        if not m:
            continue
        student = (m.group("student_id") or "").strip()
        notebook = notebook_of(m.group("file") or "", notebooks)
        if student and notebook:
            stamp = m.groupdict().get("timestamp")
            return student, notebook, stamp
    return None


def notebook_of(file: str, notebooks: list[str]) -> str | None:
    stem = PurePosixPath(file).name
    if stem.lower().endswith(".ipynb"):
        stem = stem[: -len(".ipynb")]
    for candidate in (stem, re.sub(RESUBMIT + "$", "", stem)):
        for n in notebooks:
            if candidate == n:
                return n
        for n in notebooks:
            if candidate.lower() == n.lower():
                return n
    return None


def safe_component(name: str) -> bool:
    return bool(name) and name not in {".", ".."} and "/" not in name and "\\" not in name and "\0" not in name


def safe_entry_name(name: str) -> bool:
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm) or "\0" in norm:
        return False
    return ".." not in norm.split("/")


def is_junk(name: str) -> bool:
    """macOS resource forks and Finder files that zip tools add."""
    parts = name.replace("\\", "/").split("/")
    return parts[0] == "__MACOSX" or parts[-1] == ".DS_Store" or parts[-1].startswith("._")


def inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return False
    return True


def aware(when: datetime, due: datetime | None) -> datetime:
    """A naive time is read in ``due``'s timezone if it has one, else in local time."""
    if when.tzinfo is not None:
        return when
    if due is not None and due.tzinfo is not None:
        return when.replace(tzinfo=due.tzinfo)
    return when.astimezone()


def entry_time(name, stamp, info, due, use_mtime, report) -> datetime | None:
    if stamp:
        parsed = parse_time(stamp)
        if parsed is not None:
            return aware(parsed, due)
        report.problems.append(
            f"{name}: cannot read the time {stamp!r} in its name; "
            + ("used the entry's modification time" if use_mtime else "no time recorded")
        )
    if use_mtime:
        try:
            return aware(datetime(*info.date_time), due)
        except ValueError:
            return None
    return None


def parse_time(text: str) -> datetime | None:
    text = text.strip()
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    for fmt in NAME_TIME_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    try:
        from dateutil import parser

        return parser.parse(text)
    except (ImportError, ValueError, OverflowError):
        return None


def read_limited(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes | None:
    with zf.open(info) as fh:
        data = fh.read(limit + 1)
    return None if len(data) > limit else data


def looks_like_notebook(data: bytes) -> bool:
    try:
        nb = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False
    return isinstance(nb, dict) and isinstance(nb.get("cells"), list)


def duration(delta) -> str:
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if hours or days:
        parts.append(f"{hours}h")
    parts.append(f"{minutes}m")
    if not days and not hours:
        parts.append(f"{secs}s")
    return " ".join(parts)
