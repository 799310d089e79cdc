"""nbgrader's own tools read this file when they run from the repository root: the formgrader in
JupyterLab (`make start`) and the `nbgrader` command. It hands them the course that `llmcourse` uses
(`$LLMCOURSE_COURSE_DIR`, else ./course_work): the same gradebook, preprocessors, sandboxed grading
kernel and secret seed (lib/llmcourse/grading/nbgrader_setup.py), so a grade never depends on the tool.

solutions/ stays the source of truth: `llmcourse generate` copies it into the course's source/ folder.
The repository is the folder of this file.
"""

from pathlib import Path

from llmcourse.grading.course import Course
from llmcourse.grading.nbgrader_setup import tool_config

c = get_config()  # noqa: F821 (provided by traitlets when it loads this file)
c.merge(tool_config(Course.open(repo=Path(__file__).resolve().parent)))
