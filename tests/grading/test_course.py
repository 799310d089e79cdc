"""The course and the repository it grades from: found explicitly, with a clear error otherwise; the
worker protocol's Job survives its JSON line; a second grading run is refused while one holds the lock."""

from __future__ import annotations

import pytest
from conftest import REPO
from llmcourse.grading.autograde import grading_lock
from llmcourse.grading.course import Course, GradingOptions, PipelineError, find_repo
from llmcourse.grading.worker import Job


def test_the_repository_is_found_from_the_current_directory_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("LLMCOURSE_REPO", raising=False)
    monkeypatch.chdir(REPO / "solutions")
    assert find_repo() == REPO  # a parent of the current directory
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PipelineError, match="no course repository at or above .* set \\$LLMCOURSE_REPO"):
        find_repo()
    monkeypatch.setenv("LLMCOURSE_REPO", str(REPO))
    assert find_repo() == REPO
    monkeypatch.setenv("LLMCOURSE_REPO", str(tmp_path))
    with pytest.raises(PipelineError, match="is not a course repository"):
        find_repo()


def test_a_course_opens_beside_the_repository_it_was_given(tmp_path, monkeypatch):
    monkeypatch.delenv("LLMCOURSE_COURSE_DIR", raising=False)
    course = Course.open(tmp_path / "course", repo=REPO)
    assert course.root == (tmp_path / "course").resolve() and course.root.is_dir()
    assert course.gradebook_url == f"sqlite:///{course.root / 'gradebook.db'}"
    assert "01_tokenization" in course.assignments() and course.notebooks("01_tokenization") == ["tokenization"]
    with pytest.raises(PipelineError, match="unknown assignment 'nope'"):
        course.check_assignment("nope")
    assert course.seed() == course.seed()  # made once, then kept


def test_a_job_travels_as_one_json_line():
    job = Job("/c", "/r", None, "01_tokenization", "ada", GradingOptions(workers=3, force=True, sandbox=False))
    line = job.to_line()
    assert "\n" not in line and Job.from_line(line) == job


def test_the_grading_lock_refuses_a_second_run(tmp_path):
    course = Course(tmp_path, REPO)
    with grading_lock(course, "01_tokenization"):
        with pytest.raises(PipelineError, match="another autograde of 01_tokenization is running .*pid"):
            with grading_lock(course, "01_tokenization"):
                pass
    with grading_lock(course, "01_tokenization"):  # released: taken again
        pass
