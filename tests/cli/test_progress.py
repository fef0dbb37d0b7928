"""Progress when stderr is not a terminal: plain lines, throttled, the last one always."""

from __future__ import annotations

import io

from rich.console import Console

from simcluster.cli.progress import tracker


def test_lines_are_throttled_and_the_end_is_always_shown() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=200)
    with tracker("simulating", every_s=3600.0, console=console) as update:
        for done in range(11):
            update("", done, 10)
    lines = buf.getvalue().splitlines()
    # The first call prints (nothing printed yet), then nothing for an hour, then the end.
    assert len(lines) == 2
    assert lines[0].startswith("simulating: 0/10 (0%)")
    assert lines[1].startswith("simulating: 10/10 (100%)") and "elapsed" in lines[1]


def test_each_task_has_its_own_lines() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=200)
    with tracker("simulating, ", every_s=0.0, console=console) as update:
        update("rung 1", 1, 2)
        update("rung 2", 2, 2)
    text = buf.getvalue()
    assert "simulating, rung 1: 1/2 (50%)" in text and "ETA" in text
    assert "simulating, rung 2: 2/2 (100%)" in text
