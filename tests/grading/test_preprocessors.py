"""The course's CheckCellMetadata (grading/preprocessors.py) rejects what nbgrader's rejects, after it has
passed the same notebook: it remembers the metadata it validated, so a grading worker does not check
nbgrader's JSON schema again for every cell of every student."""

from __future__ import annotations

import copy

import nbformat
import pytest
from conftest import REPO
from llmcourse.grading.preprocessors import CheckCellMetadata
from nbgrader.nbgraderformat import ValidationError
from nbgrader.preprocessors import CheckCellMetadata as NbgraderCheckCellMetadata

RELEASE = REPO / "assignments" / "01_tokenization" / "tokenization.ipynb"


def first_test_cell(nb):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code")


def no_points(nb):
    del first_test_cell(nb).metadata["nbgrader"]["points"]


def empty_grade_id(nb):
    first_test_cell(nb).metadata["nbgrader"]["grade_id"] = ""


def bad_type(nb):
    first_test_cell(nb).metadata["nbgrader"]["points"] = "two"


def duplicate_id(nb):
    cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id")]
    cells[1].metadata["nbgrader"]["grade_id"] = cells[0].metadata["nbgrader"]["grade_id"]


def markdown_solution(nb):
    cell = first_test_cell(nb)
    cell.cell_type, cell.outputs, cell.execution_count = "markdown", None, None
    del cell["outputs"], cell["execution_count"]


@pytest.mark.parametrize("damage", [no_points, empty_grade_id, bad_type, duplicate_id, markdown_solution])
def test_damaged_metadata_fails_after_the_release_passed(damage):
    release = nbformat.read(RELEASE, as_version=4)
    CheckCellMetadata().preprocess(copy.deepcopy(release), {})  # the release's metadata are now remembered
    damaged = copy.deepcopy(release)
    damage(damaged)
    with pytest.raises(ValidationError):
        NbgraderCheckCellMetadata().preprocess(copy.deepcopy(damaged), {})  # nbgrader's own verdict
    with pytest.raises(ValidationError, match="metadata may be corrupted"):
        CheckCellMetadata().preprocess(damaged, {})
    CheckCellMetadata().preprocess(copy.deepcopy(release), {})  # a failure is not remembered either way
