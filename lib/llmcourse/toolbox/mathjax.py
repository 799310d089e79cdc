"""MathJax from an installed package, so equations render offline in formgrader and in feedback HTML.

nbgrader's formgrade and feedback templates call nbconvert's ``mathjax()`` macro with no URL, and the
macro's default loads MathJax 2.7 from a CDN: offline, every equation stays raw LaTeX and formgrader's
own JavaScript (which calls ``MathJax.Hub``) raises. The package ``jupyter-server-mathjax`` ships the
same MathJax 2.7 and serves it from every Jupyter server at ``<base_url>static/jupyter_server_mathjax/``.

The fix goes where nbconvert looks for user templates: ``<jupyter data dir>/nbconvert/templates/<name>/``
is searched right after nbgrader's own ``formgrade`` (or ``feedback``) folder and before nbconvert's
``classic`` and ``base`` ones, so a ``mathjax.html.j2`` there replaces the CDN macro for nbgrader's pages
only (formgrader fixes ``template_name`` and ``extra_template_basedirs`` itself, and nbconvert's
``extra_template_paths`` come last, so neither can do it). Our macro keeps nbconvert's
MathJax configuration and loads the script from the serving Jupyter server, whose base URL it reads from
the page (formgrader's ``base_url`` variable, else the path before ``/files/``, ``/view/`` or
``/formgrader/``), so it works under a JupyterHub prefix too. A page opened from disk (``file://``) has
no server to ask: its equations stay LaTeX, and nothing raises.
"""

from __future__ import annotations

from pathlib import Path

from .packaged import write_atomic

MATHJAX_PATH = "static/jupyter_server_mathjax/MathJax.js"  # where jupyter-server-mathjax serves it
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"  # the config jupyter-server-mathjax ships (no CHTML)

MACRO = r"""{#- llmcourse: MathJax from the installed jupyter-server-mathjax, never a CDN (toolbox/mathjax.py) -#}
{%- macro mathjax(url=None) -%}
    <!-- Load mathjax from the Jupyter server that serves this page -->
    <script type="text/javascript">
    (function () {
        var root = null, path = window.location.pathname;
        if (typeof base_url === "string") {
            root = base_url.replace(/\/formgrader\/?$/, "");
        } else if (window.location.protocol.indexOf("http") === 0) {
            var m = path.match(/^(.*?)\/(files|view|formgrader|nbconvert)\//);
            root = m ? m[1] : "";
        }
        if (root !== null) {
            document.write('<script type="text/javascript" src="' + root + '/__PATH__?config=__CONFIG__"><\/script>');
        }
    })();
    </script>
    <!-- MathJax configuration (nbconvert's) -->
    <script type="text/x-mathjax-config">
    init_mathjax = function() {
        if (window.MathJax) {
            MathJax.Hub.Config({
                TeX: {equationNumbers: {autoNumber: "AMS", useLabelIds: true}},
                tex2jax: {
                    inlineMath: [ ['$','$'], ["\\(","\\)"] ],
                    displayMath: [ ['$$','$$'], ["\\[","\\]"] ],
                    processEscapes: true,
                    processEnvironments: true
                },
                displayAlign: 'center',
                messageStyle: 'none',
                CommonHTML: {linebreaks: {automatic: true}}
            });
            MathJax.Hub.Queue(["Typeset", MathJax.Hub]);
        }
    }
    init_mathjax();
    </script>
{%- endmacro %}
""".replace("__PATH__", MATHJAX_PATH).replace("__CONFIG__", MATHJAX_CONFIG)


NBGRADER_TEMPLATES = ("formgrade", "feedback")  # nbgrader's HTML templates that call mathjax()


def install_templates(data_dir: str | Path | None = None) -> list[Path]:
    """Write our ``mathjax.html.j2`` for nbgrader's templates into ``data_dir`` (default: Jupyter's
    user data folder, the first place nbconvert looks) and return the files written.

    Idempotent and atomic: formgrader reloads its config (which calls this) on every page.
    """
    if data_dir is None:
        from jupyter_core.paths import jupyter_data_dir

        data_dir = jupyter_data_dir()
    if not isinstance(data_dir, (str, Path)):
        raise TypeError(f"install_templates needs a folder path, got {type(data_dir).__name__}")
    written = []
    for name in NBGRADER_TEMPLATES:
        target = Path(data_dir) / "nbconvert" / "templates" / name / "mathjax.html.j2"
        if not target.exists() or target.read_text() != MACRO:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, MACRO)
        written.append(target)
    return written
