"""nbgrader's own tools read this file when they run from the repository root: the formgrader in
JupyterLab (`make lab`), the student's Assignments tab (`make start`) and the `nbgrader` command. It
hands them the course that `llmcourse` uses (`$LLMCOURSE_COURSE_DIR`, else ./course_work): the same
gradebook, preprocessors, sandboxed grading kernel and secret seed (lib/llmcourse/grading/nbgrader_setup.py),
so a grade never depends on the tool.

solutions/ stays the source of truth: `llmcourse generate` copies it into the course's source/ folder.
The repository is the folder of this file.
"""

from pathlib import Path

from llmcourse.grading.course import Course
from llmcourse.grading.nbgrader_setup import tool_config
from llmcourse.toolbox.mathjax import install_templates

c = get_config()  # noqa: F821 (provided by traitlets when it loads this file)
course = Course.open(repo=Path(__file__).resolve().parent)
c.merge(tool_config(course))

# nbgrader's exchange (release, fetch, submit, collect) defaults to /srv/nbgrader/exchange, which a laptop
# does not have: formgrader shows a warning banner, the student's Assignments tab says "Error fetching
# courses!" and the server logs "[C] Unwritable directory" on every page. A local exchange inside the course
# directory (made here, on demand) works for one machine; a JupyterHub course points this at a shared folder.
exchange = course.root / "exchange"
exchange.mkdir(parents=True, exist_ok=True)
c.Exchange.root = str(exchange)

# formgrader's pages and feedback HTML load MathJax from a CDN, so offline every equation stays raw LaTeX and
# formgrader's own script raises. MathJax comes from the pinned jupyter-server-mathjax instead, which every
# Jupyter server serves (lib/llmcourse/toolbox/mathjax.py).
install_templates()
