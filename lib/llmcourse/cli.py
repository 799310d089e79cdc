"""The ``llmcourse`` command: one front door for students and instructors.

llmcourse validate NOTEBOOK            students: run the visible tests, exit 1 on failure
llmcourse generate [ASSIGNMENT ...]    instructors: solutions/ -> assignments/ (nbgrader)
llmcourse autograde ASSIGNMENT [--submissions DIR]
llmcourse collect ASSIGNMENT EXPORT.zip   import an LMS export into submitted/
llmcourse feedback ASSIGNMENT          HTML per student, no hidden tests or inputs
llmcourse integrity ASSIGNMENT         similar pairs and copies of the reference (winnowing)
llmcourse export [--out grades.csv]
llmcourse bundle OUT --through NN [--release-keys 01,02]   what students receive (lectures, releases, a wheel)

A student's package (``llmcourse bundle``) holds ``validate`` and none of the instructor commands.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .grading.course import Course, GradingOptions, PipelineError


def _course(args) -> Course:
    return Course.open(args.course_dir, db_url=args.db, repo=args.repo)


def cmd_validate(args) -> int:
    from .grading.validate import damage_warnings, validate

    failed = 0
    for nb in args.notebooks:
        parts = validate(nb, timeout=args.timeout)
        print(f"== {nb}")
        for warning in damage_warnings(nb):
            print(f"WARNING {warning}")
        for p in parts:
            mark = "PASS" if p.passed else "FAIL"
            print(f"[{mark}] {p.grade_id} ({p.points:g} points)")
            for line in p.lines:
                print("    " + line.replace("\n", "\n    "))
        got = sum(p.points for p in parts if p.passed)
        total = sum(p.points for p in parts)
        print(f"visible tests: {got:g} / {total:g} points pass")
        failed += sum(not p.passed for p in parts)
    if failed:
        print("Some parts fail their visible tests (hidden tests decide the grade; fix these first).")
    return 1 if failed else 0


def cmd_generate(args) -> int:
    from .grading.release import generate

    course = _course(args)
    for a in args.assignments or course.assignments():
        release = generate(course, a, update_repo=not args.no_update_repo)
        print(f"generated {a}: {release} -> assignments/{a}")
    return 0


def cmd_autograde(args) -> int:
    from tqdm import tqdm

    from .grading.autograde import autograde
    from .grading.nbgrader_setup import sandbox_available
    from .grading.submission import StudentResult

    course = _course(args)
    options = GradingOptions(
        workers=args.workers,
        cell_timeout=args.cell_timeout,
        notebook_timeout=args.notebook_timeout,
        memory_mb=args.memory_mb,
        output_limit=args.output_limit,
        force=args.force,
        sandbox=False if args.no_sandbox else None,
        run_all_cells=args.run_all_cells,
        forbidden=args.forbidden,
    )
    if not args.no_sandbox and not sandbox_available():
        print(
            "warning: user namespaces are unavailable here, so student kernels run without the sandbox "
            "(the answer key cannot be imported, but files on disk are not hidden)",
            file=sys.stderr,
        )
    bar = tqdm(desc=f"autograde {args.assignment}", unit="student", file=sys.stderr, dynamic_ncols=True)

    def show(r: StudentResult, done: int, total: int) -> None:
        bar.total = total
        note = f" ({'; '.join(m.splitlines()[0] for m in r.messages)})" if r.messages else ""
        bar.write(f"{r.student:<28} {r.status:<8} {r.score:g} / {r.max_score:g}{note}")
        bar.update(1)

    results = autograde(
        course,
        args.assignment,
        args.submissions and Path(args.submissions),
        args.student or None,
        options=options,
        dask=args.dask,
        progress=show,
    )
    bar.close()
    errors = [r for r in results if r.status == "error"]
    print(
        f"graded {len(results) - len(errors)} of {len(results)} submissions "
        f"({len(errors)} with errors); report: {course.root / 'reports' / (args.assignment + '.csv')}"
    )
    return 0


def cmd_collect(args) -> int:
    from datetime import datetime

    from .grading.collect import collect_zip, report_text

    course = _course(args)
    course.check_assignment(args.assignment)
    roster = Path(args.roster).read_text().split() if args.roster else None
    try:
        due = datetime.fromisoformat(args.due) if args.due else None
    except ValueError:
        raise PipelineError(f"--due {args.due!r} is not an ISO date like 2026-12-01T23:59+00:00") from None
    try:
        report = collect_zip(
            args.zip,
            course.root,
            args.assignment,
            course.notebooks(args.assignment),
            pattern=args.pattern,
            roster=roster,
            due=due,
            force=args.force,
            strict=args.strict,
        )
    except (ValueError, FileNotFoundError) as e:
        raise PipelineError(str(e)) from None
    print(report_text(report))
    return 0


def cmd_integrity(args) -> int:
    from .grading.integrity import similarity_report, write_report

    course = _course(args)
    course.check_assignment(args.assignment)
    report = similarity_report(course.root, args.assignment, repo_root=course.repo, threshold=args.threshold)
    csv_path, html_path = write_report(report, Path(args.out) if args.out else course.root / "reports")
    print(f"{len(report['pairs'])} similar pairs, {len(report['reference_matches'])} near the reference")
    print(f"{len(report['forbidden'])} uses of calls a part asks students to write themselves")
    print(f"report: {html_path}\n        {csv_path}")
    return 0


def cmd_feedback(args) -> int:
    from .grading.feedback import feedback

    for path in feedback(_course(args), args.assignment, args.student or None):
        print(path)
    return 0


def cmd_export(args) -> int:
    from .grading.feedback import export

    print(export(_course(args), Path(args.out)))
    return 0


def cmd_bundle(args) -> int:
    from .grading.bundle import build

    course = _course(args)
    seed_file = course.root / ".grading_seed"
    seed = int(seed_file.read_text().strip()) if seed_file.exists() else None
    keys = [k for item in args.release_keys or [] for k in item.split(",") if k.strip()]
    try:
        out = build(course.repo, Path(args.out), args.through, keys, seed=seed, force=args.force)
    except ValueError as e:
        raise PipelineError(str(e)) from None
    info = json.loads((out / "BUNDLE.json").read_text())
    print(f"student distribution in {out} (scanned: no solutions, hidden tests, seed or withheld answer keys)")
    print(f"units {', '.join(info['units'])}; answer keys released: {', '.join(info['released_keys']) or 'none'}")
    for notebook, keys in info["needs_withheld_keys"].items():
        print(f"warning: {notebook} imports {', '.join(keys)}, withheld here: students cannot run it", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmcourse", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--course-dir", help="nbgrader course directory (default: $LLMCOURSE_COURSE_DIR or <repo>/course_work)"
    )
    parser.add_argument("--db", help="gradebook database URL (default: sqlite in the course directory)")
    parser.add_argument(
        "--repo", help="course repository with solutions/ (default: $LLMCOURSE_REPO, else the current directory)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="run a notebook's visible tests (students)")
    p.add_argument("notebooks", nargs="+")
    p.add_argument("--timeout", type=int, default=120, help="seconds per cell")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("generate", help="make the student version of assignments from solutions/")
    p.add_argument("assignments", nargs="*")
    p.add_argument("--no-update-repo", action="store_true", help="do not copy the release into assignments/")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("autograde", help="grade submissions")
    p.add_argument("assignment")
    p.add_argument("--submissions", help="folder laid out as <student>/<assignment>/<notebook>.ipynb")
    p.add_argument("--student", action="append", help="grade only this student (repeatable)")
    p.add_argument("--force", action="store_true", help="regrade students already graded")
    defaults = GradingOptions()
    p.add_argument("--workers", type=int, default=defaults.workers, help="parallel graders (default: the cores)")
    p.add_argument("--cell-timeout", type=int, default=defaults.cell_timeout, help="seconds per cell")
    p.add_argument("--notebook-timeout", type=int, default=defaults.notebook_timeout, help="seconds per notebook")
    p.add_argument("--memory-mb", type=int, default=defaults.memory_mb, help="memory cap of a student's kernel")
    p.add_argument("--output-limit", type=int, default=defaults.output_limit, help="bytes of output kept per notebook")
    p.add_argument("--no-sandbox", action="store_true", help="do not isolate kernels in namespaces (not recommended)")
    p.add_argument(
        "--run-all-cells",
        action="store_true",
        help="also run the cells after the last graded cell (they cannot change a grade; off by default)",
    )
    p.add_argument(
        "--forbidden",
        choices=("zero", "flag"),
        default=defaults.forbidden,
        help="a part whose answer uses a library call the part asks students to write themselves "
        "(torch.softmax in a softmax part): it earns zero (default), or it is only flagged in the report; "
        "students graded before keep their result unless --force",
    )
    p.add_argument(
        "--dask",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="grade on Dask: a LocalCluster, or the scheduler at ADDRESS (e.g. tcp://host:8786)",
    )
    p.set_defaults(func=cmd_autograde)

    p = sub.add_parser("collect", help="import an LMS zip export (one file per student) into submitted/")
    p.add_argument("assignment")
    p.add_argument("zip")
    p.add_argument("--roster", help="file with one student id per line")
    p.add_argument("--strict", action="store_true", help="skip students not on the roster")
    p.add_argument("--due", help="due date, ISO 8601 (late files are imported and reported)")
    p.add_argument("--pattern", help="regex with named groups student_id and file")
    p.add_argument("--force", action="store_true", help="overwrite existing submissions")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("integrity", help="similarity report: near-identical submissions, copies of the reference")
    p.add_argument("assignment")
    p.add_argument("--threshold", type=float, default=0.8)
    p.add_argument("--out", help="folder for the CSV and HTML report (default: <course>/reports)")
    p.set_defaults(func=cmd_integrity)

    p = sub.add_parser("feedback", help="write HTML feedback for graded submissions")
    p.add_argument("assignment")
    p.add_argument("--student", action="append")
    p.set_defaults(func=cmd_feedback)

    p = sub.add_parser("export", help="export all grades as CSV")
    p.add_argument("--out", default="grades.csv")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "bundle", help="build what students receive: lectures, releases and a package without unreleased answer keys"
    )
    p.add_argument("out", help="folder to write (new or empty, or a previous bundle with --force)")
    p.add_argument("--through", required=True, help="last unit handed out: a number or name (05, 05b, 04_attention)")
    p.add_argument(
        "--release-keys",
        action="append",
        metavar="UNITS",
        help="units whose answer keys students may have, comma-separated (01,02 or tokenization); repeatable",
    )
    p.add_argument("--force", action="store_true", help="replace a previous bundle in OUT")
    p.set_defaults(func=cmd_bundle)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PipelineError as e:
        print(f"llmcourse {args.command}: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        if not (e.name or "").startswith("llmcourse.grading."):
            raise
        # a student's package (llmcourse bundle) holds only the student-side commands
        print(
            f"llmcourse {args.command}: an instructor command, not part of the student package ({e.name} is missing)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
