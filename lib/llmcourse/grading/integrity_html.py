"""The similarity report on disk: a CSV row per flagged pair and a self-contained HTML page with
side-by-side excerpts (every piece of student text escaped). :mod:`llmcourse.grading.integrity` makes
the report; this module only writes it."""

from __future__ import annotations

import csv
import html
from pathlib import Path

from .winnowing import K, W


def write_report(report: dict, out_dir) -> tuple[Path, Path]:
    """Write ``integrity_<assignment>.csv`` (one row per flagged pair) and a self-contained
    ``integrity_<assignment>.html`` with side-by-side excerpts (every piece of student text escaped)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "integrity" + (f"_{report['assignment']}" if report.get("assignment") else "")
    rows = [("reference", p) for p in report.get("reference_matches", [])] + [
        ("pair", p) for p in report.get("pairs", [])
    ]

    csv_path = out_dir / f"{stem}.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["kind", "a", "b", "similarity", "shared_fingerprints", "shared_regions"])
        for kind, p in rows:
            writer.writerow(
                [kind, _cell(p.a), _cell(p.b), f"{p.similarity:.3f}", p.shared_fingerprints, len(p.shared_lines)]
            )
        for student, part, finding in report.get("forbidden", []):  # b: the part and the call it uses
            writer.writerow(["write_yourself", _cell(student), _cell(f"{part}: {finding}"), "", "", ""])

    e = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{e(stem)}</title><style>",
        "body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse}",
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}",
        "pre{margin:0;white-space:pre-wrap;font-size:12px}.side td{width:50%}h3{margin-top:2em}",
        "</style></head><body>",
        f"<h1>Similarity report: {e(str(report.get('assignment', '')))}</h1>",
        f"<p>{len(report.get('students', []))} submissions compared; threshold "
        f"{float(report.get('threshold', 0)):.0%}; winnowing with k={e(str(report.get('k', K)))} tokens, "
        f"window {e(str(report.get('w', W)))}. Only solution-cell code counts, after removing everything "
        "in the released notebook; identifiers are renamed and comments dropped before comparing. "
        "A high score is a reason to read the excerpts, not proof of copying.</p>",
    ]
    if report.get("skipped"):
        parts.append("<p>Not compared:</p><ul>" + "".join(f"<li>{e(s)}</li>" for s in report["skipped"]) + "</ul>")
    parts.append(
        "<h2>Summary</h2><table><tr><th>kind</th><th>a</th><th>b</th><th>similarity</th>"
        "<th>shared fingerprints</th></tr>"
    )
    for n, (kind, p) in enumerate(rows):
        parts.append(
            f"<tr><td>{e(kind)}</td><td><a href='#m{n}'>{e(p.a)}</a></td><td>{e(p.b)}</td>"
            f"<td>{p.similarity:.0%}</td><td>{p.shared_fingerprints}</td></tr>"
        )
    if not rows:
        parts.append("<tr><td colspan='5'>nothing at or above the threshold</td></tr>")
    parts.append("</table>")
    parts.append("<h2>Calls a part asks students to write themselves</h2>")
    if report.get("forbidden"):
        parts.append("<table><tr><th>student</th><th>part</th><th>what the answer uses</th></tr>")
        for student, part, finding in report["forbidden"]:
            parts.append(f"<tr><td>{e(student)}</td><td>{e(part)}</td><td>{e(finding)}</td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p>none found</p>")
    for n, (_kind, p) in enumerate(rows):
        parts.append(f"<h3 id='m{n}'>{e(p.a)} &harr; {e(p.b)}: {p.similarity:.0%}</h3>")
        parts.append(f"<table class='side'><tr><th>{e(p.a)}</th><th>{e(p.b)}</th></tr>")
        for xa, xb in p.shared_lines:
            parts.append(f"<tr><td><pre>{e(xa)}</pre></td><td><pre>{e(xb)}</pre></td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    html_path = out_dir / f"{stem}.html"
    html_path.write_text("\n".join(parts), encoding="utf-8")
    return csv_path, html_path


def _cell(text: str) -> str:
    """Spreadsheets run cells that start with = + - @ as formulas."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
