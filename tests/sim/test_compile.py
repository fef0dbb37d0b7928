"""Compiling a bound workload into per-stream items (``sim/compile.py``)."""

from __future__ import annotations

from simcluster.placement import bind
from simcluster.sim import SimOptions
from simcluster.sim.compile import _COLLECTIVE, _TIMED, compile_program
from tests.conftest import star, workload


def _program(fuse: bool = True):
    # Rank 0: stream a runs three compute ops (the first waits for stream b's op 0), then an
    # all-reduce; stream b: a host op, then one that waits for a's middle op. Rank 1: the
    # all-reduce alone.
    timed = [("b", "host", 0.1, None), ("a", "compute", 0.3, [0]), ("a", "compute", 0.7, None),
             ("a", "compute", 1.1, None), ("b", "host", 0.2, [2])]
    rows = [{"rank": 0, "stream": s, "kind": k, "duration_us": d, "deps": deps}
            for s, k, d, deps in timed]
    rows += [{"rank": r, "stream": "a", "kind": "collective", "collective": "all_reduce",
              "comm_bytes": 1024, "group": "g", "seq": 0} for r in (0, 1)]
    wl = workload(rows, groups={"g": [0, 1]})
    return compile_program(bind(wl, star(2)), SimOptions(fuse_timed_ops=fuse))


def test_every_op_is_in_exactly_one_item_in_stream_order() -> None:
    for fuse in (True, False):
        prog = _program(fuse)
        batched = [op[0] for items in prog.streams for item in items
                   for op in (item[6] or (item,))]
        assert batched == prog.order.tolist()


def test_timed_ops_fuse_into_one_item_with_their_durations() -> None:
    prog = _program()
    items = dict(zip(prog.stream_names, prog.streams))
    assert {k: len(v) for k, v in items.items()} == {(0, "a"): 2, (0, "b"): 2, (1, "a"): 1}
    head, coll = items[(0, "a")]
    assert head[:6] == (1, _TIMED, 0, 0, False, (0,))
    assert [(op[0], op[1], op[4]) for op in head[6]] == [(1, 0.3, False), (2, 0.7, True),
                                                         (3, 1.1, False)]
    assert coll[:2] == (5, _COLLECTIVE) and coll[6] == ()
    plain = _program(fuse=False)
    assert {k: len(v) for k, v in zip(plain.stream_names, plain.streams)} == {
        (0, "a"): 4, (0, "b"): 2, (1, "a"): 1}
