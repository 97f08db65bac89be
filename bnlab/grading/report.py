"""The instructor's summary report of one graded cohort, as one self-contained offline HTML file.

`summarize` computes the numbers; `write_report` lays them out with inline CSS and an inline SVG
histogram (no scripts, fonts, stylesheets or images from anywhere else), so the file can be
mailed, archived or printed as is. Every learner-provided string (student ids, reasons, diagnosis
and test names) is escaped: a submission can name itself `<script>` and it stays text.

Students that were not graded are kept apart from those graded with a 0: they are counted and
listed with their reason, and left out of every statistic, pass rate and share.
"""

from __future__ import annotations

import math
import statistics
from datetime import datetime
from html import escape
from pathlib import Path

BINS = 10
TOP_DIAGNOSES = 10  # rows of "What to re-teach"; the summary keeps them all
REVIEW_LINES = 8  # findings shown per student under "For review"
NOT_GRADED_PREFIX = "not graded:"


def _is_graded(result: dict) -> bool:
    return result.get("status") == "graded" and result.get("score") is not None


def _full_marks(cell: dict) -> bool:
    score, top = cell.get("score"), cell.get("max_score")
    if score is None or top is None:
        return False
    return math.isclose(float(score), float(top), rel_tol=1e-9, abs_tol=1e-9)


def _bin_of(score: float, max_score: float) -> int:
    """The bin of a score: [k, k+1) * width, the top bin closed so max_score falls in it."""
    if max_score <= 0:
        return 0
    k = math.floor(score * BINS / max_score + 1e-9)  # 3.3 of 11 is bin 3, not 2.9999...
    return min(max(k, 0), BINS - 1)


def _strip_prefix(reason: str) -> str:
    reason = (reason or "").strip()
    if reason.lower().startswith(NOT_GRADED_PREFIX):
        reason = reason[len(NOT_GRADED_PREFIX) :].strip()
    return reason or "no reason given"


def summarize(results: list[dict], max_score: float | None = None) -> dict:
    """The numbers the report shows.

    max_score bounds the histogram; by default the largest `max_score` among the results.
    Returns a dict with:
      counts: students, graded, not_graded, zero_scores (graded students with a 0)
      stats: mean, median, min, max of graded scores (each None when nobody was graded)
      max_score, histogram: [{lo, hi, count}] x 10 over [0, max_score], the top bin closed
      tests: [{test, passed, graded, rate}] in the order the cells first appear; rate is the
             fraction of graded students with full marks on it (None when nobody has it)
      diagnoses: [{name, students, share, tests}] ranked by distinct graded students showing it
             (ties by name); share is over graded students; tests in the order they first appear
      limits: the same for the sandbox/limit reasons attached to cells
      not_graded: [{student, reason}] in input order, reason without its "not graded:" prefix
      review: [{student, findings}] in input order, for the submissions whose own code reaches
             into the interpreter or the grader (bnlab.grading.review); scores are unaffected
    """
    graded = [r for r in results if _is_graded(r)]
    scores = [float(r["score"]) for r in graded]
    if max_score is None:
        tops = [float(r["max_score"]) for r in results if r.get("max_score") is not None]
        max_score = max(tops, default=0.0)
    max_score = float(max_score)

    counts = {
        "students": len(results),
        "graded": len(graded),
        "not_graded": len(results) - len(graded),
        "zero_scores": sum(1 for s in scores if s == 0),
    }
    stats = {
        "mean": statistics.fmean(scores) if scores else None,
        "median": float(statistics.median(scores)) if scores else None,
        "min": min(scores) if scores else None,
        "max": max(scores) if scores else None,
    }

    width = max_score / BINS
    histogram = [{"lo": k * width, "hi": (k + 1) * width, "count": 0} for k in range(BINS)]
    for s in scores:
        histogram[_bin_of(s, max_score)]["count"] += 1

    order: list[str] = []  # tests in order of first appearance among graded students
    passed: dict[str, int] = {}
    present: dict[str, int] = {}
    found: dict[str, dict[str, dict]] = {"diagnoses": {}, "reasons": {}}
    for r in graded:
        student = str(r.get("student", ""))
        for test, cell in (r.get("cells") or {}).items():
            test = str(test)
            if test not in present:
                order.append(test)
                present[test], passed[test] = 0, 0
            present[test] += 1
            passed[test] += _full_marks(cell)
            for key, table in found.items():
                for name in cell.get(key) or []:
                    entry = table.setdefault(str(name), {"students": set(), "tests": set()})
                    entry["students"].add(student)
                    entry["tests"].add(test)

    tests = [
        {
            "test": t,
            "passed": passed[t],
            "graded": present[t],
            "rate": passed[t] / present[t] if present[t] else None,
        }
        for t in order
    ]

    def ranked(table: dict[str, dict]) -> list[dict]:
        rows = [
            {
                "name": name,
                "students": len(e["students"]),
                "share": len(e["students"]) / len(graded) if graded else None,
                "tests": [t for t in order if t in e["tests"]],
            }
            for name, e in table.items()
        ]
        return sorted(rows, key=lambda d: (-d["students"], d["name"]))

    not_graded = [
        {"student": str(r.get("student", "")), "reason": _strip_prefix(r.get("reason", ""))}
        for r in results
        if not _is_graded(r)
    ]
    return {
        "counts": counts,
        "stats": stats,
        "max_score": max_score,
        "histogram": histogram,
        "tests": tests,
        "diagnoses": ranked(found["diagnoses"]),
        "limits": ranked(found["reasons"]),
        "not_graded": not_graded,
        "review": [
            {"student": str(r.get("student", "")), "findings": [str(f) for f in r["review"]]}
            for r in results
            if r.get("review")
        ],
    }


# ---------------------------------------------------------------------------------------------
# HTML


def _num(x: float | None, digits: int = 2) -> str:
    if x is None:
        return "–"
    text = f"{x:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"


CSS = """
:root { --ink: #1f2933; --muted: #616e7c; --line: #d9e2ec; --bar: #3b6ea5; --bad: #c0392b;
        --soft: #f5f7fa; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       sans-serif; color: var(--ink); margin: 0 auto; max-width: 60rem; padding: 2rem 1.5rem;
       line-height: 1.45; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 .6rem; border-bottom: 2px solid var(--line);
     padding-bottom: .2rem; }
.sub, .note, footer { color: var(--muted); font-size: .9rem; }
.cards { display: flex; flex-wrap: wrap; gap: .75rem; margin: 1rem 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: .5rem .9rem; min-width: 7rem;
        background: var(--soft); }
.card .v { font-size: 1.4rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .k { color: var(--muted); font-size: .8rem; text-transform: uppercase;
           letter-spacing: .04em; }
.card.warn .v { color: var(--bad); }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .88em;
       word-break: break-all; }
.meter { display: inline-block; width: 8rem; height: .7rem; background: var(--line);
         border-radius: 3px; vertical-align: middle; overflow: hidden; }
.meter span { display: block; height: 100%; background: var(--bar); }
.meter.low span { background: var(--bad); }
svg { width: 100%; max-width: 44rem; height: auto; display: block; }
svg text { font-family: inherit; fill: var(--ink); }
section { page-break-inside: avoid; break-inside: avoid; }
footer { margin-top: 2.5rem; border-top: 1px solid var(--line); padding-top: .6rem; }
@media print {
  body { padding: 0; max-width: none; font-size: 11pt; }
  .card, th { background: none; }
  .meter, .meter span, svg rect { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def _histogram_svg(histogram: list[dict], graded: int) -> str:
    w, h = 640, 240
    left, right, top, bottom = 36, 8, 22, 40
    plot_w, plot_h = w - left - right, h - top - bottom
    peak = max((b["count"] for b in histogram), default=0) or 1
    slot = plot_w / len(histogram)
    parts = [
        f'<svg viewBox="0 0 {w} {h}" role="img" xmlns="http://www.w3.org/2000/svg" '
        f'aria-label="Histogram of the scores of {graded} graded students">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{w - right}" y2="{top + plot_h}" '
        'stroke="#9aa5b1" stroke-width="1"/>',
    ]
    for k, b in enumerate(histogram):
        bar_h = plot_h * b["count"] / peak
        x = left + k * slot + 3
        y = top + plot_h - bar_h
        closing = "]" if k == len(histogram) - 1 else ")"
        label = f"{_num(b['lo'], 1)}–{_num(b['hi'], 1)}"
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot - 6:.1f}" height="{bar_h:.1f}" '
            f'fill="#3b6ea5"><title>[{label}{closing}: {b["count"]}</title></rect>'
        )
        parts.append(
            f'<text x="{x + (slot - 6) / 2:.1f}" y="{y - 5:.1f}" text-anchor="middle" '
            f'font-size="12">{b["count"]}</text>'
        )
        parts.append(
            f'<text x="{x + (slot - 6) / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
            f'font-size="10.5">{escape(label)}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{h - 6}" text-anchor="middle" font-size="11" '
        'fill="#616e7c">score (the last bin includes the maximum)</text>'
    )
    parts.append(
        f'<text x="12" y="{top + plot_h / 2:.1f}" text-anchor="middle" font-size="11" '
        f'fill="#616e7c" transform="rotate(-90 12 {top + plot_h / 2:.1f})">students</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


def _meter(rate: float | None) -> str:
    if rate is None:
        return ""
    low = " low" if rate < 0.5 else ""
    width = f"{100 * rate:.1f}%"
    return (
        f'<span class="meter{low}" aria-hidden="true"><span style="width:{width}"></span></span>'
    )


def _tests_list(tests: list[str]) -> str:
    return ", ".join(f"<code>{escape(t)}</code>" for t in tests)


def _render(summary: dict, assignment: str, max_score: float, generated: datetime) -> str:
    c, s = summary["counts"], summary["stats"]
    a = escape(str(assignment))
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        # No script runs on this page, whatever a submission was named or wrote.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Cohort report: {a}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>Cohort report: {a}</h1>",
        f'<div class="sub">Maximum score {_num(max_score)} points</div>',
        "</header>",
    ]

    warn = " warn" if c["not_graded"] else ""
    cards = [
        ("Students", str(c["students"]), ""),
        ("Graded", str(c["graded"]), ""),
        ("Not graded", str(c["not_graded"]), warn),
        ("Mean", _num(s["mean"]), ""),
        ("Median", _num(s["median"]), ""),
        ("Min", _num(s["min"]), ""),
        ("Max", _num(s["max"]), ""),
    ]
    out.append('<section id="overview"><h2>Overview</h2><div class="cards">')
    for label, value, cls in cards:
        out.append(
            f'<div class="card{cls}"><div class="k">{label}</div><div class="v">{value}</div>'
            "</div>"
        )
    out.append("</div>")
    out.append(
        f'<p class="note">Statistics are over the {c["graded"]} graded students, out of '
        f"{_num(max_score)}; {c['zero_scores']} of them scored 0. The {c['not_graded']} "
        "students not graded are listed below and left out of every number.</p>"
    )
    out.append("</section>")

    out.append('<section id="histogram"><h2>Score distribution</h2>')
    if c["graded"]:
        out.append(_histogram_svg(summary["histogram"], c["graded"]))
    else:
        out.append('<p class="note">No graded students.</p>')
    out.append("</section>")

    out.append('<section id="tests"><h2>Pass rate per test</h2>')
    if summary["tests"]:
        out.append(
            '<p class="note">Share of graded students with full marks on the test, the hardest '
            "first.</p>"
        )
        out.append(
            '<table><thead><tr><th>Test</th><th class="n">Passed</th><th class="n">Rate</th>'
            "<th></th></tr></thead><tbody>"
        )
        rows = sorted(summary["tests"], key=lambda t: (t["rate"] is None, t["rate"] or 0.0))
        for t in rows:
            out.append(
                f"<tr><td><code>{escape(t['test'])}</code></td>"
                f'<td class="n">{t["passed"]} / {t["graded"]}</td>'
                f'<td class="n">{_pct(t["rate"])}</td><td>{_meter(t["rate"])}</td></tr>'
            )
        out.append("</tbody></table>")
    else:
        out.append('<p class="note">No test results.</p>')
    out.append("</section>")

    diagnoses = summary["diagnoses"]
    out.append('<section id="reteach"><h2>What to re-teach</h2>')
    if diagnoses:
        out.append(
            '<p class="note">Known mistakes recognised in failing tests, by the number of '
            "students making them.</p>"
        )
        out.append(
            '<table><thead><tr><th>Mistake</th><th class="n">Students</th>'
            '<th class="n">Share of graded</th><th>Tests</th></tr></thead><tbody>'
        )
        for d in diagnoses[:TOP_DIAGNOSES]:
            out.append(
                f'<tr><td>{escape(d["name"])}</td><td class="n">{d["students"]}</td>'
                f'<td class="n">{_pct(d["share"])}</td><td>{_tests_list(d["tests"])}</td></tr>'
            )
        out.append("</tbody></table>")
        if len(diagnoses) > TOP_DIAGNOSES:
            rest = len(diagnoses) - TOP_DIAGNOSES
            out.append(f'<p class="note">… and {rest} less frequent ones.</p>')
    else:
        out.append('<p class="note">No known mistake was recognised.</p>')
    out.append("</section>")

    if summary["limits"]:
        out.append('<section id="limits"><h2>Limits hit while grading</h2>')
        out.append(
            '<table><thead><tr><th>Reason</th><th class="n">Students</th><th>Tests</th>'
            "</tr></thead><tbody>"
        )
        for d in summary["limits"]:
            out.append(
                f'<tr><td>{escape(d["name"])}</td><td class="n">{d["students"]}</td>'
                f"<td>{_tests_list(d['tests'])}</td></tr>"
            )
        out.append("</tbody></table></section>")

    out.append(f'<section id="not-graded"><h2>Not graded ({c["not_graded"]})</h2>')
    if summary["not_graded"]:
        out.append(
            '<p class="note">These submissions were set aside, not scored: they are not zeros '
            "and count in no statistic.</p>"
        )
        out.append("<table><thead><tr><th>Student</th><th>Reason</th></tr></thead><tbody>")
        for n in summary["not_graded"]:
            out.append(
                f"<tr><td><code>{escape(n['student'])}</code></td>"
                f"<td>{escape(n['reason'])}</td></tr>"
            )
        out.append("</tbody></table>")
    else:
        out.append('<p class="note">Every submission was graded.</p>')
    out.append("</section>")

    flagged = summary["review"]
    out.append(f'<section id="review"><h2>For review ({len(flagged)})</h2>')
    if flagged:
        out.append(
            '<p class="note">The code of these submissions reaches into the interpreter or the '
            "grader (object lists, frames, raw memory, the operator registry, stdin, the "
            "grader's modules, patched libraries, code built at run time), which no answer to "
            "this assignment needs. Their scores stand as judged; read the code before "
            "trusting them. Each line names the cell and the line in it.</p>"
        )
        out.append("<table><thead><tr><th>Student</th><th>Found</th></tr></thead><tbody>")
        for r in flagged:
            shown = r["findings"][:REVIEW_LINES]
            more = len(r["findings"]) - len(shown)
            items = "".join(f"<li>{escape(f)}</li>" for f in shown)
            if more:
                items += f"<li>… and {more} more</li>"
            out.append(
                f"<tr><td><code>{escape(r['student'])}</code></td><td><ul>{items}</ul></td></tr>"
            )
        out.append("</tbody></table>")
    else:
        out.append('<p class="note">No submission\'s code reaches into the interpreter.</p>')
    out.append("</section>")

    stamp = generated.strftime("%Y-%m-%d %H:%M %Z").strip()
    out.append(f"<footer>Generated {escape(stamp)} · assignment {a}</footer>")
    out.append("</body>\n</html>\n")
    return "\n".join(out)


def write_report(results: list[dict], path: Path, assignment: str, max_score: float) -> None:
    """Write the cohort's summary report to `path` as one self-contained HTML file."""
    summary = summarize(results, max_score=max_score)
    html = _render(summary, assignment, float(max_score), datetime.now().astimezone())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")


# The feedback pages nbgrader writes load MathJax 2.7.7 from cdnjs (nbconvert's template) and
# carry nbconvert's inline styles; no other script may run there (learner markdown is sanitized
# already: this is the second wall). Sources are limited to MathJax's own folder on the CDN, not
# the whole CDN, whose other libraries (AngularJS, say) would let injected markup run script.
# MathJax's latest.js asks the CDN's API for a newer 2.x, which connect-src 'none' refuses, and
# then loads its own version from that folder. The inline MathJax configuration has a
# non-script type, so it is data, not code.
MATHJAX_PREFIX = "https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/"
FEEDBACK_CSP = (
    f"default-src 'none'; script-src {MATHJAX_PREFIX}; "
    f"style-src 'unsafe-inline' {MATHJAX_PREFIX}; "
    f"font-src data: {MATHJAX_PREFIX}; img-src data:"
)


def secure_feedback_pages(root: Path, assignment: str) -> int:
    """Put FEEDBACK_CSP at the top of <head> of every feedback page of `assignment`; returns how
    many pages got it (a page that already has it is left alone)."""
    meta = f'<meta http-equiv="Content-Security-Policy" content="{FEEDBACK_CSP}">'
    count = 0
    for page in sorted(Path(root, "feedback").glob(f"*/{assignment}/*.html")):
        if page.is_symlink() or not page.is_file():
            continue
        html = page.read_text(encoding="utf-8", errors="replace")
        if meta in html:
            continue
        head = html.find("<head>")
        if head < 0:
            continue
        at = head + len("<head>")
        tmp = page.with_suffix(".html.tmp")
        tmp.write_text(html[:at] + "\n" + meta + html[at:], encoding="utf-8")
        tmp.replace(page)
        count += 1
    return count
