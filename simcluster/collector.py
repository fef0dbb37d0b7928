"""The process's cyclic garbage collector, paused or frozen around the work that makes many
long-lived objects: compiling and running a simulation (``sim/engine.py``), building a
topology (``topology/build.py``)."""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator


class CollectorGuard:
    """The process's cyclic garbage collector, shared by the simulations of all its threads
    (a Dask worker runs its tasks in a thread, not the main one).

    While simulations run, the objects alive (op tuples, route arrays, graph dicts; and each
    compiled engine) are parked in the permanent generation (``gc.freeze``) so that full
    collections do not rescan them (~0.1 s each at 4,096 ranks); reference counting still
    frees them. While an engine compiles, or a topology is built, the collector is paused:
    compiling makes millions of op tuples that all stay alive (building, a graph's hundreds
    of thousands of dicts), and the collections their allocation triggers rescan them again
    and again (about 40 % of compile time for GPT-3 on 1,024 GPUs, 30 % of building 16,384
    GPUs). The first simulation to start takes what the caller had; the last to end
    restores it (unfrozen unless the caller had frozen objects itself; the collector back on
    if it was on), so overlapping simulations in threads cannot leave it frozen or off.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._frozen_before = 0
        self._compiling = 0
        self._was_enabled = True

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Objects alive now stay frozen until the last simulation ends."""
        with self._lock:
            if self._running == 0:
                self._frozen_before = gc.get_freeze_count()
            self._running += 1
            gc.freeze()
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                if self._running == 0 and self._frozen_before == 0:
                    gc.unfreeze()

    @contextlib.contextmanager
    def compiling(self) -> Iterator[None]:
        """No collection until the last compilation (or topology build) ends."""
        with self._lock:
            if self._compiling == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._compiling += 1
        try:
            yield
        finally:
            with self._lock:
                self._compiling -= 1
                if self._compiling == 0 and self._was_enabled:
                    gc.enable()

    def freeze(self) -> None:
        """Freeze what is alive now (a compiled engine) for the running simulations."""
        with self._lock:
            gc.freeze()


#: The one guard of the process (the collector is one per process).
COLLECTOR = CollectorGuard()
