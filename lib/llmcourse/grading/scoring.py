"""Partial credit: a part's points split into a visible share and a hidden share.

A graded part is one test cell that runs its visible checks (the cases a student sees and can debug) and,
in the grader's copy, its hidden checks (edge cases and random cases from the secret seed). All or nothing
per cell was too harsh: a student whose function is right on every visible case and wrong on one hidden
edge case lost the whole part. The rule, decided in the trusted grader process (never in the kernel)::

    visible share = 40 % of the part's points      (rounded to 0.01)
    hidden share  = the rest, 60 %

    the cell raised an error, or a visible check failed   -> 0
    every visible check passed, a hidden check failed     -> the visible share
    every check passed                                    -> all the points

Why this shape:

- **Two shares, not a score per case.** A student reads the rule in one sentence and the points table shows
  both numbers per part; per-case scores would depend on how many random cases a spec draws.
- **Hidden weighs more than visible.** The visible cases are known in advance (their expected outputs ship
  with the release), so they cannot decide most of a grade; the hidden ones show the function is right in
  general (design.md s.5: hidden tests decide grades).
- **The hidden share is earned on top of the visible one.** A function wrong on the visible cases earns
  nothing even if some hidden case happens to pass, so a wrong part loses all its points, as before.
- **An error in the cell is zero.** An assert in the test cell failed, the kernel died or a limit was
  broken: the cell did not run as written, and nothing that did not run earns points.

A part with only visible (or only hidden) checks gives that share all its points; a test cell with no
check at all is all or nothing. nbgrader records the score from the cell's outputs
(``nbgrader.utils.determine_grade``): no error and an ``execute_result`` whose text is a number between 0
and the points is a partial grade; an error is 0; no error and no result is full marks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

VISIBLE_SHARE = 0.4  # of a part's points; the rest is the hidden share


class _Outcome(Protocol):
    hidden: bool
    passed: bool


def split_points(points: float, has_visible: bool = True, has_hidden: bool = True) -> tuple[float, float]:
    """(visible share, hidden share) of a part worth ``points``; the two add up to ``points``.

    >>> split_points(3)
    (1.2, 1.8)
    """
    if isinstance(points, bool) or not isinstance(points, (int, float)) or points < 0:
        raise ValueError(f"a part's points must be a number >= 0, got {points!r}")
    points = float(points)
    if not has_hidden:
        return points, 0.0
    if not has_visible:
        return 0.0, points
    visible = round(VISIBLE_SHARE * points, 2)
    return visible, round(points - visible, 2)


def part_score(points: float, outcomes: Sequence[_Outcome], errors: Sequence[str] = ()) -> float:
    """The points a test cell earns from its checks' outcomes and the errors it raised (rule above)."""
    visible = [o for o in outcomes if not o.hidden]
    hidden = [o for o in outcomes if o.hidden]
    if errors or not all(o.passed for o in visible):
        return 0.0
    if not outcomes:
        return float(points)
    visible_share, hidden_share = split_points(points, bool(visible), bool(hidden))
    return visible_share + (hidden_share if all(o.passed for o in hidden) else 0.0)


def partial_line(score: float, points: float) -> str:
    """What a student reads about a part that earned only its visible share (nothing about hidden inputs)."""
    visible_share, hidden_share = split_points(points)
    return (
        f"PARTIAL CREDIT: {score:g} of {points:g} points. The visible cases pass, which earns the visible share "
        f"({visible_share:g} points); a hidden case failed, so the hidden share ({hidden_share:g} points) is lost."
    )


def graded_outputs(score: float, points: float, lines: list[str], ename: str, execution_count: int | None) -> list:
    """The test cell's outputs that make nbgrader record ``score`` (``determine_grade``), with the report.

    All the points: the report as plain output. Nothing: an error named ``ename`` carrying the report. A
    partial score: the report, then an ``execute_result`` whose text is the score."""
    from nbformat.v4 import new_output

    if 0 < score < points:
        lines = [*lines, partial_line(score, points)]
    text = "\n".join(lines) + "\n"
    if score >= points:
        return [new_output("stream", name="stdout", text=text)]
    if score <= 0:
        report = text.rstrip("\n").split("\n")
        return [new_output("error", ename=ename, evalue=report[0], traceback=report)]
    number = new_output("execute_result", data={"text/plain": repr(score)}, execution_count=execution_count)
    return [new_output("stream", name="stdout", text=text), number]
