"""nbgrader's own tools read this file when they run from the repository root: the formgrader in
JupyterLab (`make start`) and the `nbgrader` command. It hands them the course that `llmcourse` uses
(`$LLMCOURSE_COURSE_DIR`, else ./course_work): the same gradebook, preprocessors, sandboxed grading
kernel and secret seed (lib/llmcourse/grading/pipeline.py), so a grade never depends on the tool.

solutions/ stays the source of truth: `llmcourse generate` copies it into the course's source/ folder.
"""

from llmcourse.grading.pipeline import tool_config

c = get_config()  # noqa: F821 (provided by traitlets when it loads this file)
c.merge(tool_config())
