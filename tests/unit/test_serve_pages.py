"""cryoglass.serve.routes_pages: what a job page shows comes from the command's JSON."""

from __future__ import annotations

from cryoglass.serve.routes_pages import headline_rows, summary_rows


def test_headline_is_the_list_the_result_carries():
    result = {
        "headline": ["sphericity", "not_in_result", "global_resolution_angstrom"],
        "global_resolution_angstrom": 3.2,
        "sphericity": 0.91,
        "shells": [{"shell": 0}],
    }
    assert headline_rows(result) == [("sphericity", 0.91), ("global_resolution_angstrom", 3.2)]
    assert headline_rows({"sphericity": 0.91}) == []
    assert headline_rows(None) == []


def test_summary_rows_leave_out_the_headline_list_and_curves():
    result = {
        "headline": ["a"],
        "a": 1.5,
        "axis": [0.0, 0.0, 1.0],
        "long": [1, 2, 3, 4],
        "nested": {"x": 1},
        "shells": [],
    }
    assert summary_rows(result) == [("a", 1.5), ("axis", [0.0, 0.0, 1.0]), ("nested.x", 1)]
