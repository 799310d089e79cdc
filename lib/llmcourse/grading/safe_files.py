"""Opening files a student could have made, without following what they point to.

A submission folder, a zip and a grading kernel's working folder are written by someone the grader does not
trust. Any name in them may be a symbolic link (to the gradebook, another student's notebook, the course's
source, any file the instructor can write), a FIFO (an ``open`` that never returns), a socket, a device node
(``/dev/zero`` reads forever) or a hard link (writing through it changes the file it shares). So the grader
opens such files only through this module:

- :func:`kind` says what a path is **without following it** (``lstat``): ``""`` for a plain file;
- :func:`read_regular` opens with ``O_NOFOLLOW | O_NONBLOCK`` and reads only a plain file, up to a limit;
- :func:`write_new` (the toolbox's ``write_atomic``) never writes into an existing file: it writes a new one
  beside it and ``os.replace``\\ s the name, which replaces a link instead of writing through it;
- :func:`copy_plain_tree` copies plain files and folders only, and returns what it left out, with why;
- :func:`set_aside` moves links and special files out of a folder the grader is about to read.

Everything refused is *said*, as a sentence for the student's report, never raised past the caller: one
submission must not stop a batch. Standard library only (``toolbox/packaged.py`` is too).
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import shutil
import stat
from pathlib import Path

from ..toolbox.packaged import write_atomic as write_new

__all__ = [
    "NotPlainFile",
    "copy_plain_tree",
    "is_regular",
    "kind",
    "read_regular",
    "remove_tree",
    "set_aside",
    "unsafe_entries",
    "write_new",
]


class NotPlainFile(OSError):
    """The path is not a plain file the grader may read or write (a link, a FIFO, ..., or too big)."""


def describe(mode: int) -> str:
    """What a file of this ``st_mode`` is, as words for a report (``""`` for a plain file)."""
    if stat.S_ISREG(mode):
        return ""
    for test, words in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
    ):
        if test(mode):
            return words
    return "not a plain file"


def kind(path: str | os.PathLike) -> str:
    """``""`` when ``path`` is a plain file; otherwise what it is ("a symbolic link", "a FIFO (named pipe)",
    "missing", ...). Never follows a link."""
    try:
        return describe(os.lstat(path).st_mode)
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return f"unreadable ({e.strerror})"


def is_regular(path: str | os.PathLike) -> bool:
    """Whether ``path`` itself (not what it may point to) is a plain file."""
    return kind(path) == ""


def read_regular(path: str | os.PathLike, limit: int = 64 << 20) -> bytes:
    """The bytes of the plain file ``path``; :class:`NotPlainFile` (with a readable message) for a link, a
    FIFO, a socket, a device, a folder or a file over ``limit`` bytes.

    ``O_NOFOLLOW`` makes opening a symbolic link fail, ``O_NONBLOCK`` keeps a FIFO from blocking the open, and
    the type is checked on the opened descriptor (``fstat``), so nothing can be swapped in between.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise NotPlainFile(f"{os.fspath(path)} is a symbolic link: not followed") from None
        if e.errno == errno.ENXIO:  # a FIFO with no writer, or a socket
            raise NotPlainFile(f"{os.fspath(path)} is {kind(path)}: not read") from None
        raise
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        what = describe(st.st_mode)
        if what:
            raise NotPlainFile(f"{os.fspath(path)} is {what}: not read")
        if st.st_size > limit:
            raise NotPlainFile(f"{os.fspath(path)} holds {st.st_size} bytes, over the {limit}-byte limit: not read")
        data = f.read(limit + 1)
    if len(data) > limit:  # grew while we read
        raise NotPlainFile(f"{os.fspath(path)} is over the {limit}-byte limit: not read")
    return data


def unsafe_entries(folder: str | os.PathLike) -> list[tuple[str, str]]:
    """(path relative to ``folder``, what it is) for everything under ``folder`` that is neither a plain
    file nor a folder. Walks without following links; ``folder`` itself must be a real folder."""
    found = []
    for top, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:  # os.walk lists a link to a folder among dirs, but never enters it
            path = os.path.join(top, name)
            what = kind(path)
            if what not in ("", "a folder"):
                found.append((os.path.relpath(path, folder), what))
    return sorted(found)


def copy_plain_tree(src: str | os.PathLike, dst: str | os.PathLike, skip: tuple[str, ...] = ()) -> list[str]:
    """Copy the plain files and folders under ``src`` into ``dst`` (made when missing), never following a
    link; returns one sentence per entry left out. Names matching a pattern of ``skip`` (``fnmatch``; files or
    folders, anywhere) are left out silently. A hard-linked file is copied as a file of its own: reading it is harmless, and the copy shares
    nothing with the original."""
    left_out = []
    os.makedirs(dst, exist_ok=True)
    for top, dirs, files in os.walk(src, followlinks=False):
        rel = os.path.relpath(top, src)
        dirs[:] = [d for d in dirs if not _skipped(d, skip)]
        for name in sorted(dirs + files):
            if _skipped(name, skip):
                continue
            path, out = os.path.join(top, name), os.path.normpath(os.path.join(dst, rel, name))
            what = kind(path)
            if what == "a folder":
                os.makedirs(out, exist_ok=True)
            elif what == "":
                _copy_file(path, out)
            else:
                target = f" (to {_link_text(path)})" if what == "a symbolic link" else ""
                left_out.append(
                    f"{os.path.normpath(os.path.join(rel, name))} is {what}{target}: not followed, not copied"
                )
    return left_out


def set_aside(folder: str | os.PathLike, aside: str | os.PathLike) -> list[str]:
    """Move every link or special file under ``folder`` into ``aside`` (same relative paths; nothing is
    deleted: the link itself moves, what it points to is never touched); returns one sentence per entry.
    ``folder`` itself being a link is moved too."""
    folder, aside = Path(folder), Path(aside)
    what = kind(folder)
    if what in ("missing", "a folder"):
        entries = unsafe_entries(folder) if what == "a folder" else []
    else:
        entries = [(".", what)]
    notes = []
    for rel, what in entries:
        path = folder / rel
        target = f" (to {_link_text(path)})" if what == "a symbolic link" else ""
        dest = aside / (folder.name if rel == "." else rel)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            if os.path.lexists(dest):
                os.unlink(dest)
            os.rename(path, dest)  # moves the name: a link stays a link, pointing where it pointed
            where = f"set aside in {aside}"
        except OSError:  # another file system: a link or a FIFO holds no work of the student's
            with contextlib.suppress(OSError):
                os.unlink(path)
            where = "removed"
        notes.append(f"{folder.name if rel == '.' else rel} is {what}{target}: not followed, {where}")
    return notes


def remove_tree(path: str | os.PathLike) -> None:
    """Remove a folder a kernel wrote, whatever it left there: links are removed, never followed (``rmtree``
    unlinks them), and folders it made unreadable or read-only are opened up first (same owner: it ran as
    us). Missing is fine."""
    if kind(path) != "a folder":
        with contextlib.suppress(OSError):
            os.unlink(path)
        return
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    # top-down: each folder's subfolders are opened up before the walk lists them
    for top, dirs, _files in os.walk(path, followlinks=False):
        for d in dirs:
            if kind(os.path.join(top, d)) == "a folder":
                with contextlib.suppress(OSError):
                    os.chmod(os.path.join(top, d), 0o700)
    shutil.rmtree(path, ignore_errors=True)


def _skipped(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _copy_file(src: str, dst: str) -> None:
    """Copy one plain file, opened without following links (it may have been swapped since the walk)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(src, flags)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return
        if os.path.lexists(dst):
            os.unlink(dst)
        with open(dst, "xb") as out:  # "x": a fresh file, never one that was there
            shutil.copyfileobj(f, out, 1 << 20)


def _link_text(path: str | os.PathLike) -> str:
    try:
        return os.readlink(path)[:200]
    except OSError:
        return "?"
