"""Grading: nbgrader underneath, honest grades on top. See pipeline.py for the layout."""
from .pipeline import (Course, PipelineError, autograde, export, feedback, generate,  # noqa: F401
                       validate)
