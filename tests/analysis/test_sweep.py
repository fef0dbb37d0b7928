"""Pareto front and top configurations of sweep rows, by hand."""

from __future__ import annotations

import pyarrow as pa

from simcluster.analysis.sweep import axis_columns, cost_column, feasible, pareto_front, top


def _row(pid: str, t: float, usd: float | None, status: str = "ok", oom: bool = False) -> dict:
    return {"tp": 1, "point_id": pid, "status": status, "oom": oom, "step_time_us": t,
            "usd_per_1m_tokens": usd, "usd_per_step": usd}


ROWS = [_row("a", 10, 5.0), _row("b", 20, 3.0), _row("c", 15, 6.0),  # c: beaten by a
        _row("d", 20, 3.0), _row("e", 30, 3.0),                        # d ties b; e beaten
        _row("f", 40, 1.0), _row("g", 5, None)]                        # g: no cost


def test_front_keeps_undominated_rows_and_ties() -> None:
    front = pareto_front(ROWS, "step_time_us", "usd_per_1m_tokens")
    assert [r["point_id"] for r in front] == ["a", "b", "d", "f"]


def test_top_and_feasible() -> None:
    assert [r["point_id"] for r in top(ROWS, "time", 3)] == ["g", "a", "c"]
    assert [r["point_id"] for r in top(ROWS, "cost", 2)] == ["f", "b"]
    table = pa.Table.from_pylist(ROWS + [_row("x", 1, 0.1, status="error"),
                                         _row("y", 1, 0.1, status="oom", oom=True)])
    assert {r["point_id"] for r in feasible(table)} == set("abcdefg")
    assert axis_columns(table) == ["tp"]
    assert cost_column(ROWS) == "usd_per_1m_tokens"
    assert cost_column([_row("z", 1, None)]) == "usd_per_step"
