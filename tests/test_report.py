"""The cohort report: the numbers it shows, and an offline HTML file that escapes learner text."""

from __future__ import annotations

import re

import pytest

from bnlab.grading.report import summarize, write_report

MAX = 10.0
HOSTILE = "<script>alert(1)</script>"


def cell(score: float, top: float = 1.0, diagnoses=(), reasons=()) -> dict:
    return {
        "score": score,
        "max_score": top,
        "diagnoses": list(diagnoses),
        "reasons": list(reasons),
    }


def graded(student: str, cells: dict) -> dict:
    return {
        "student": student,
        "status": "graded",
        "reason": "",
        "score": sum(c["score"] for c in cells.values()),
        "max_score": MAX,
        "cells": cells,
    }


def not_graded(student: str, reason: str) -> dict:
    return {
        "student": student,
        "status": "not graded",
        "reason": reason,
        "score": None,
        "max_score": MAX,
        "cells": {},
    }


def cohort() -> list[dict]:
    """Tests a (4 pts), b (4 pts), c (2 pts); scores 10, 6, 0, 5.5; two not graded."""
    return [
        graded("s01", {"test_a": cell(4, 4), "test_b": cell(4, 4), "test_c": cell(2, 2)}),
        graded(
            "s02",
            {
                "test_a": cell(4, 4),
                "test_b": cell(0, 4, ["unbiased variance", "eps outside sqrt"]),
                "test_c": cell(2, 2),
            },
        ),
        graded(
            "s03",
            {
                "test_a": cell(0, 4, ["unbiased variance"], ["time limit"]),
                # the same mistake twice for one student counts once
                "test_b": cell(0, 4, ["unbiased variance"]),
                "test_c": cell(0, 2, ["wrong axis"]),
            },
        ),
        graded(
            "s04",
            {
                "test_a": cell(4, 4),
                "test_b": cell(1.5, 4, ["wrong axis"]),
                "test_c": cell(0, 2, ["wrong axis"]),
            },
        ),
        not_graded("s05", "not graded: duplicated grade id 'test_a'; re-download the notebook"),
        not_graded("s06", ""),
    ]


def test_counts_and_statistics_leave_out_the_not_graded():
    s = summarize(cohort(), max_score=MAX)
    assert s["counts"] == {"students": 6, "graded": 4, "not_graded": 2, "zero_scores": 1}
    assert s["stats"]["mean"] == pytest.approx((10 + 6 + 0 + 5.5) / 4)
    assert s["stats"]["median"] == pytest.approx(5.75)
    assert s["stats"]["min"] == 0
    assert s["stats"]["max"] == 10


def test_histogram_has_ten_bins_and_a_closed_top():
    s = summarize(cohort(), max_score=MAX)
    hist = s["histogram"]
    assert len(hist) == 10
    assert hist[0]["lo"] == 0 and hist[-1]["hi"] == pytest.approx(MAX)
    assert [b["count"] for b in hist] == [1, 0, 0, 0, 0, 1, 1, 0, 0, 1]
    assert sum(b["count"] for b in hist) == s["counts"]["graded"]


def test_histogram_edges_are_exact_for_awkward_maxima():
    # 3.3 of 11 sits on the edge between bins 2 and 3 and must land in 3, 11 in the top bin.
    results = [{**graded("x", {}), "score": v, "max_score": 11.0} for v in (3.3, 11.0, 1.1)]
    counts = [b["count"] for b in summarize(results, max_score=11.0)["histogram"]]
    assert counts == [0, 1, 0, 1, 0, 0, 0, 0, 0, 1]


def test_max_score_defaults_to_the_results():
    assert summarize(cohort())["max_score"] == MAX


def test_pass_rates_are_in_cell_order_over_graded_students():
    tests = summarize(cohort())["tests"]
    assert [t["test"] for t in tests] == ["test_a", "test_b", "test_c"]
    assert [t["passed"] for t in tests] == [3, 1, 2]
    assert [t["graded"] for t in tests] == [4, 4, 4]
    assert [t["rate"] for t in tests] == [0.75, 0.25, 0.5]


def test_diagnoses_are_ranked_by_distinct_students():
    diagnoses = summarize(cohort())["diagnoses"]
    assert [(d["name"], d["students"]) for d in diagnoses] == [
        ("unbiased variance", 2),  # s02 once, s03 twice: 2 students
        ("wrong axis", 2),  # s03 once, s04 twice
        ("eps outside sqrt", 1),
    ]
    assert diagnoses[0]["share"] == 0.5
    assert diagnoses[0]["tests"] == ["test_a", "test_b"]
    assert diagnoses[1]["tests"] == ["test_b", "test_c"]


def test_limit_reasons_and_not_graded_list():
    s = summarize(cohort())
    assert s["limits"] == [
        {"name": "time limit", "students": 1, "share": 0.25, "tests": ["test_a"]}
    ]
    assert s["not_graded"] == [
        {"student": "s05", "reason": "duplicated grade id 'test_a'; re-download the notebook"},
        {"student": "s06", "reason": "no reason given"},
    ]


def test_empty_cohort():
    s = summarize([], max_score=MAX)
    assert s["counts"] == {"students": 0, "graded": 0, "not_graded": 0, "zero_scores": 0}
    assert s["stats"] == {"mean": None, "median": None, "min": None, "max": None}
    assert [b["count"] for b in s["histogram"]] == [0] * 10
    assert s["tests"] == [] and s["diagnoses"] == [] and s["not_graded"] == []


def test_only_not_graded_students():
    s = summarize([not_graded("s01", "not graded: unreadable")])
    assert s["counts"]["graded"] == 0 and s["stats"]["mean"] is None
    assert s["not_graded"] == [{"student": "s01", "reason": "unreadable"}]


def test_report_shows_the_key_numbers(tmp_path):
    path = tmp_path / "out" / "report.html"
    write_report(cohort(), path, "02_forward_pass", MAX)
    html = path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert "02_forward_pass" in html
    assert "5.38" in html  # mean 5.375
    assert "5.75" in html  # median
    assert "<svg" in html and html.count("<rect") == 10
    assert "25%" in html and "75%" in html
    # hardest test first
    rows = re.findall(r"<td><code>(test_[abc])</code></td>", html)
    assert rows[:3] == ["test_b", "test_c", "test_a"]
    assert "What to re-teach" in html and "unbiased variance" in html
    assert "duplicated grade id" in html and "no reason given" in html
    assert "Generated" in html


def test_report_is_self_contained(tmp_path):
    path = tmp_path / "report.html"
    write_report(cohort(), path, "a", MAX)
    html = path.read_text(encoding="utf-8")
    assert "<script" not in html
    assert "<link" not in html
    assert "@import" not in html and "url(" not in html
    csp = (
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
    )
    assert html.count(csp) == 1  # no script or remote resource may run, even if injected
    rest = html.replace(csp, "").replace("http://www.w3.org/2000/svg", "")
    assert "src=" not in rest and "http" not in rest


def test_report_escapes_learner_text(tmp_path):
    results = cohort()
    results[0]["student"] = HOSTILE
    results[1]["cells"]["test_b"]["diagnoses"] = ['<img src=x onerror="alert(2)">']
    results[1]["cells"]["test_b"]["reasons"] = ["<b>limit</b>"]
    results[4]["student"] = HOSTILE
    results[4]["reason"] = f"not graded: {HOSTILE}"
    results.append(graded(HOSTILE, {HOSTILE: cell(0, 1, [HOSTILE])}))
    results[2]["review"] = [f"cell 3, line 1: a string naming interpreter internals: {HOSTILE}"]
    path = tmp_path / "report.html"
    write_report(results, path, f"hw {HOSTILE}", MAX)
    html = path.read_text(encoding="utf-8")
    assert "<script" not in html
    assert "<img" not in html and "<b>limit" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in html


def test_review_lists_flagged_students_with_their_findings(tmp_path):
    results = cohort()
    results[1]["review"] = [f"answer, line {n}: imports gc" for n in range(1, 12)]
    results[4]["review"] = ["cell 2, line 1: exec()"]  # not graded, still listed
    summary = summarize(results)
    assert [r["student"] for r in summary["review"]] == ["s02", "s05"]
    path = tmp_path / "report.html"
    write_report(results, path, "hw", MAX)
    html = path.read_text(encoding="utf-8")
    section = html[html.index('<section id="review">') :]
    assert "For review (2)" in section
    assert "answer, line 8: imports gc" in section and "line 9:" not in section
    assert "… and 3 more" in section and "cell 2, line 1: exec()" in section
    write_report(cohort(), path, "hw", MAX)
    assert "For review (0)" in path.read_text(encoding="utf-8")


def test_report_of_an_empty_cohort(tmp_path):
    path = tmp_path / "report.html"
    write_report([], path, "empty", MAX)
    html = path.read_text(encoding="utf-8")
    assert "empty" in html and "No graded students" in html
    assert "Every submission was graded" in html
