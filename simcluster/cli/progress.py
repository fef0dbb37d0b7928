"""Progress on stderr: a live bar on a terminal, plain lines elsewhere (CI logs, pipes).

``tracker(label)`` yields ``update(task, done, total)``: one bar (or line series) per task
name. Lines come at most every ``every_s`` seconds, and at the end of each task, so a log
shows that a long sweep is alive without flooding it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

Update = Callable[[str, int, int], None]


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


@contextlib.contextmanager
def tracker(label: str, every_s: float = 10.0,
            console: Console | None = None) -> Iterator[Update]:
    """Yield ``update(task, done, total)`` that shows progress of each task (module
    docstring)."""
    err = console or Console(stderr=True, highlight=False)
    if err.is_terminal:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                      console=err, transient=True) as bar:
            tasks: dict[str, object] = {}

            def live(task: str, done: int, total: int) -> None:
                if task not in tasks:
                    tasks[task] = bar.add_task(f"{label}{task}", total=total)
                bar.update(tasks[task], completed=done, total=total)  # type: ignore[arg-type]

            yield live
        return
    start = time.monotonic()
    last: dict[str, float] = {}

    def lines(task: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last.get(task, start - every_s) < every_s:
            return
        last[task] = now
        elapsed = now - start
        eta = f", ETA {_clock(elapsed / done * (total - done))}" if 0 < done < total else ""
        pct = f" ({100 * done / total:.0f}%)" if total else ""
        err.print(f"{label}{task}: {done}/{total}{pct}, {_clock(elapsed)} elapsed{eta}",
                  soft_wrap=True, markup=False)

    yield lines
