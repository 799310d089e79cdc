"""The similarity report: copied pairs and copies of the reference are flagged, honest work and the
untouched release stub never are, and the HTML shows student code only escaped.

A toy assignment in a temporary repo keeps the expectations readable; one test also runs on the real
01_tokenization notebook and library.
"""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

import nbformat
import pytest
from conftest import make_submission
from llmcourse.grading.integrity import fingerprints, similarity_report, solution_code, write_report

A, NB = "01_toy", "toy"

SIGNATURES = {
    "moving_average": "def moving_average(xs: list[float], n: int) -> list[float]:\n"
    '    """Mean of every window of n consecutive values."""\n',
    "word_counts": "def word_counts(text: str) -> dict[str, int]:\n"
    '    """Lower-cased words without punctuation -> count, most frequent first."""\n',
    "normalize": "def normalize(rows: list[list[float]]) -> list[list[float]]:\n"
    '    """Scale each row to sum 1 (a row of zeros stays zeros)."""\n',
}

REFERENCE = {
    "moving_average": """
        out = []
        total = sum(xs[:n])
        out.append(total / n)
        for i in range(n, len(xs)):
            total += xs[i] - xs[i - n]
            out.append(total / n)
        return out
    """,
    "word_counts": """
        counts = {}
        for word in text.lower().split():
            word = word.strip(".,;:!?\\"'")
            if word:
                counts[word] = counts.get(word, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    """,
    "normalize": """
        result = []
        for row in rows:
            s = sum(row)
            if s == 0:
                result.append([0.0 for _ in row])
            else:
                result.append([v / s for v in row])
        return result
    """,
}

LIB_TOY = '''
"""The toy library: the answer key of the toy assignment."""
from collections import deque


def _check_window(n):
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"window must be a positive int, got {n!r}")


def moving_average(xs, n):
    """Mean of every window of n values, with a running deque."""
    _check_window(n)
    window, acc, means = deque(), 0.0, []
    for x in xs:
        window.append(x)
        acc += x
        if len(window) > n:
            acc -= window.popleft()
        if len(window) == n:
            means.append(acc / n)
    return means
'''

# Student "ada" wrote her own; "bob" copied her: new names, new comments, other layout.
ADA = {
    "moving_average": """
        # slide a window over the list
        res = []
        for start in range(len(xs) - n + 1):
            window = xs[start:start + n]
            acc = 0
            for value in window:
                acc = acc + value
            res.append(acc / n)
        return res
    """,
    "word_counts": """
        import string
        table = str.maketrans("", "", string.punctuation + "<script>alert('pwned')</script>")
        freq = {}
        words = text.translate(table).lower().split()
        for w in words:
            if w in freq:
                freq[w] += 1
            else:
                freq[w] = 1
        ordered = sorted(freq, key=lambda w: (-freq[w], w))
        return {w: freq[w] for w in ordered}
    """,
    "normalize": """
        out = []
        for r in rows:
            tot = 0
            for x in r:
                tot += x
            out.append([x / tot if tot else 0.0 for x in r])
        return out
    """,
}
BOB = {
    "moving_average": """
        averages = []   # my answer


        for begin in range( len(xs)-n+1 ):
            chunk = xs[begin : begin+n]
            running = 0
            for item in chunk:
                running = running + item   # add it up
            averages.append(running / n)
        return averages
    """,
    "word_counts": """
        import string
        # remove punctuation first
        trans = str.maketrans('', '', string.punctuation + '<script>alert(\\'pwned\\')</script>')
        counter = {}
        tokens = text.translate(trans).lower().split()
        for tok in tokens:
            if tok in counter:
                counter[tok] += 1
            else:
                counter[tok] = 1

        order = sorted(counter, key=lambda t: (-counter[t], t))
        return {t: counter[t] for t in order}
    """,
    "normalize": """
        normed = []
        for line in rows:
            total_sum = 0
            for val in line:
                total_sum += val
            normed.append([val / total_sum if total_sum else 0.0 for val in line])
        return normed
    """,
}
# "cy" solved it independently, in another style.
CY = {
    "moving_average": """
        import numpy as np
        kernel = np.ones(n) / n
        return list(np.convolve(np.asarray(xs, dtype=float), kernel, mode="valid"))
    """,
    "word_counts": """
        from collections import Counter
        import re
        tokens = re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower())
        bag = Counter(tokens)
        return {word: bag[word] for word in sorted(bag, key=bag.get, reverse=True)}
    """,
    "normalize": """
        import numpy as np
        arr = np.asarray(rows, dtype=float)
        sums = arr.sum(axis=1, keepdims=True)
        safe = np.where(sums == 0, 1.0, sums)
        return (arr / safe).tolist()
    """,
}
# "dee" pasted the reference solution and renamed everything.
DEE = {
    "moving_average": """
        result_list = []
        s = sum(xs[:n])       # first window
        result_list.append(s / n)
        for k in range(n, len(xs)):
            s += xs[k] - xs[k - n]
            result_list.append(s / n)
        return result_list
    """,
    "word_counts": """
        d = {}
        for token in text.lower().split():
            token = token.strip('.,;:!?"\\'')
            if token:
                d[token] = d.get(token, 0) + 1
        return dict(sorted(d.items(), key=lambda item: (-item[1], item[0])))
    """,
    "normalize": """
        output = []
        for r in rows:
            row_total = sum(r)
            if row_total == 0:
                output.append([0.0 for _ in r])
            else:
                output.append([x / row_total for x in r])
        return output
    """,
}
# "eve" pasted the library's moving_average (renamed) and did nothing else.
EVE = {
    "moving_average": """
        from collections import deque
        q, running, output = deque(), 0.0, []
        for value in xs:
            q.append(value)
            running += value
            if len(q) > n:
                running -= q.popleft()
            if len(q) == n:
                output.append(running / n)
        return output
    """,
}


def _body(code: str) -> str:
    return textwrap.indent(textwrap.dedent(code).strip("\n"), "    ") + "\n"


def _meta(grade_id: str, **kw) -> dict:
    return {
        "nbgrader": {
            "grade_id": grade_id,
            "schema_version": 3,
            "locked": not kw.get("solution", False),
            "grade": kw.get("grade", False),
            "solution": kw.get("solution", False),
            **({"points": kw["points"]} if "points" in kw else {}),
        }
    }


def _solution_nb() -> nbformat.NotebookNode:
    cells = [
        nbformat.v4.new_markdown_cell("# Toy assignment", metadata=_meta("intro")),
        nbformat.v4.new_code_cell("from llmcourse.checks import check", metadata=_meta("setup")),
    ]
    for name, sig in SIGNATURES.items():
        src = sig + "    ### BEGIN SOLUTION\n" + _body(REFERENCE[name]) + "    ### END SOLUTION"
        cells.append(nbformat.v4.new_code_cell(src, metadata=_meta(name, solution=True)))
        test = f'check("toy.{name}", {name})\n### BEGIN HIDDEN TESTS\ncheck("toy.{name}", {name}, hidden=True)\n### END HIDDEN TESTS'
        cells.append(nbformat.v4.new_code_cell(test, metadata=_meta(f"test_{name}", grade=True, points=1)))
    return nbformat.v4.new_notebook(cells=cells)


def _release(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """What nbgrader's generate_assignment gives students: stubs and no hidden tests."""
    out = nbformat.from_dict(nb)
    for cell in out.cells:
        src = cell.source
        if "### BEGIN SOLUTION" in src:
            head, rest = src.split("    ### BEGIN SOLUTION", 1)
            cell.source = (
                head + "    # YOUR CODE HERE\n    raise NotImplementedError()" + rest.split("### END SOLUTION", 1)[1]
            )
        if "### BEGIN HIDDEN TESTS" in src:
            cell.source = src.split("### BEGIN HIDDEN TESTS")[0].rstrip()
    return out


def _submit(course: Path, student: str, release: nbformat.NotebookNode, answers: dict[str, str]) -> Path:
    nb = nbformat.from_dict(release)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = cell.source.replace(
                "    # YOUR CODE HERE\n    raise NotImplementedError()", _body(answers[gid]).rstrip("\n")
            )
    path = course / "submitted" / student / A / f"{NB}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    repo, course = root / "repo", root / "course"
    solution = _solution_nb()
    (repo / "solutions" / A).mkdir(parents=True)
    nbformat.write(solution, repo / "solutions" / A / f"{NB}.ipynb")
    (repo / "lib" / "llmcourse").mkdir(parents=True)
    (repo / "lib" / "llmcourse" / "toy.py").write_text(LIB_TOY)
    release = _release(solution)
    (course / "release" / A).mkdir(parents=True)
    nbformat.write(release, course / "release" / A / f"{NB}.ipynb")
    for student, answers in [("ada", ADA), ("bob", BOB), ("cy", CY), ("dee", DEE), ("eve", EVE), ("stub", {})]:
        _submit(course, student, release, answers)
    report = similarity_report(course, A, repo_root=repo, threshold=0.8)
    return repo, course, report


def _pairs(report) -> dict[frozenset, float]:
    return {frozenset((p.a, p.b)): p.similarity for p in report["pairs"]}


def test_solution_code_strips_markers_and_stub(toy):
    repo, course, _ = toy
    ref = solution_code(repo / "solutions" / A / f"{NB}.ipynb")
    assert set(ref) == set(SIGNATURES)
    assert "BEGIN SOLUTION" not in ref["normalize"] and "result.append" in ref["normalize"]
    stub = solution_code(course / "submitted" / "stub" / A / f"{NB}.ipynb")
    assert all("NotImplementedError" not in code and "YOUR CODE" not in code for code in stub.values())


def test_renamed_copy_is_flagged(toy):
    _, _, report = toy
    pairs = _pairs(report)
    assert pairs.get(frozenset(("ada", "bob")), 0) >= 0.9, report["pairs"]
    pair = next(p for p in report["pairs"] if {p.a, p.b} == {"ada", "bob"})
    assert pair.shared_lines and all(x.startswith("# toy:") for xs in pair.shared_lines for x in xs)
    assert any("freq" in xa and "counter" in xb or "counter" in xa and "freq" in xb for xa, xb in pair.shared_lines)


def test_honest_work_and_stub_are_not_flagged(toy):
    _, _, report = toy
    involved = {name for p in report["pairs"] + report["reference_matches"] for name in (p.a, p.b)}
    assert "cy" not in involved
    assert "stub" not in involved
    assert set(_pairs(report)) == {frozenset(("ada", "bob"))}
    assert sorted(report["students"]) == ["ada", "bob", "cy", "dee", "eve", "stub"]


def test_reference_copies_are_flagged(toy):
    _, _, report = toy
    matches = {p.a: p for p in report["reference_matches"]}
    assert set(matches) == {"dee", "eve"}, matches
    assert matches["dee"].similarity >= 0.9 and matches["dee"].b == "reference"
    # eve copied the library, not the notebook: the excerpt names the library function
    assert any("lib/llmcourse/toy.py:moving_average" in xb for _, xb in matches["eve"].shared_lines)


def test_fingerprints_ignore_names_comments_and_layout():
    one = "def f(a, b):\n    # add\n    total = a + b * 2\n    return [total for _ in range(3)]\n"
    two = 'def g(x,y):\n    """doc"""\n    s = x+b *  2  # other\n\n    return [s for _ in range( 3 )]\n'
    assert fingerprints(one, k=5, w=3).keys() == fingerprints(two, k=5, w=3).keys()
    assert fingerprints("%time x = 1\n!ls\n", k=2, w=2) == {}  # magics are not code
    assert fingerprints("def broken(:\n    return 1 +\n", k=3, w=2)  # a syntax error still fingerprints


def test_report_files_escape_student_code(toy, tmp_path):
    _, _, report = toy
    csv_path, html_path = write_report(report, tmp_path / "out")
    page = html_path.read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "ada" in page and "bob" in page and "dee" in page
    rows = list(csv.DictReader(csv_path.open()))
    assert {(r["kind"], r["a"], r["b"]) for r in rows} >= {("pair", "ada", "bob"), ("reference", "dee", "reference")}
    assert all(float(r["similarity"]) >= 0.8 for r in rows)


def test_unreadable_submission_is_skipped_not_fatal(toy, tmp_path):
    repo, course, _ = toy
    import shutil

    copy = tmp_path / "course"
    shutil.copytree(course, copy)
    broken = copy / "submitted" / "zed" / A / f"{NB}.ipynb"
    broken.parent.mkdir(parents=True)
    broken.write_text("{ not json")
    report = similarity_report(copy, A, repo_root=repo)
    assert any("zed" in s for s in report["skipped"])
    assert frozenset(("ada", "bob")) in _pairs(report)


def test_real_assignment_copy_of_library_is_flagged(repo, tmp_path):
    """01_tokenization: a student who pastes the library's train_merges (heap version, renamed)."""
    import ast

    source = (repo / "lib" / "llmcourse" / "tokenization.py").read_text()
    tree = ast.parse(source)
    wanted = {"train_merges", "_count_words", "_index_pairs", "_pop_most_frequent", "_apply_merge"}
    pasted = "\n\n".join(
        ast.get_source_segment(source, n) for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in wanted
    )
    for old, new in [("words", "chunks_ids"), ("freqs", "multiplicity"), ("heap", "pq"), ("counts", "tally")]:
        pasted = pasted.replace(old, new)
    pasted = "import heapq\n\n" + pasted.replace('_check_text(text, "train_merges")', "").replace(
        "_check_vocab_size(vocab_size)", ""
    )
    make_submission(tmp_path / "submitted", "mallory", "01_tokenization", "tokenization", {"train_merges": pasted})
    make_submission(tmp_path / "submitted", "stubby", "01_tokenization", "tokenization", {})
    report = similarity_report(tmp_path, "01_tokenization", repo_root=repo)
    matches = {p.a: p for p in report["reference_matches"]}
    assert set(matches) == {"mallory"}
    assert any("lib/llmcourse/tokenization.py:" in xb for _, xb in matches["mallory"].shared_lines)
    assert report["pairs"] == []


def test_an_idiom_everybody_writes_is_not_evidence(toy, tmp_path):
    """In a class of ten or more, fingerprints most submissions share are ignored between pairs
    (MOSS's -m): twelve students with the same normalize and their own other parts are not pairs."""
    repo, course, _ = toy
    release = nbformat.read(course / "release" / A / f"{NB}.ipynb", as_version=4)
    class_dir = tmp_path / "class"
    (class_dir / "release" / A).mkdir(parents=True)
    nbformat.write(release, class_dir / "release" / A / f"{NB}.ipynb")
    for i in range(12):
        own = (
            "\n".join(
                f"scaled_{j} = [v * {i * 100 + j} + {i + 7 * j} for v in xs if v > {i * 3 + j}]" for j in range(6)
            )
            + "\nreturn scaled_0"
        )
        _submit(class_dir, f"s{i:02d}", release, {"moving_average": own, "normalize": ADA["normalize"]})
    report = similarity_report(class_dir, A, repo_root=repo, threshold=0.3)
    assert report["pairs"] == []
    # the same class without the filter would pair everybody with everybody
    few = tmp_path / "few"
    for i in range(3):
        _submit(
            few,
            f"s{i:02d}",
            release,
            {
                "moving_average": "\n".join(
                    f"scaled_{j} = [v * {i * 100 + j} + {i + 7 * j} for v in xs if v > {i * 3 + j}]" for j in range(6)
                )
                + "\nreturn scaled_0",
                "normalize": ADA["normalize"],
            },
        )
    assert len(similarity_report(few, A, repo_root=repo, threshold=0.3)["pairs"]) == 3


def test_notebook_without_solution_metadata_is_reported(toy, tmp_path):
    repo, _, _ = toy
    path = tmp_path / "submitted" / "nometa" / A / f"{NB}.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(_body(ADA["normalize"]))]), path)
    report = similarity_report(tmp_path, A, repo_root=repo)
    assert any("nometa" in s and "no nbgrader solution cells" in s for s in report["skipped"])
