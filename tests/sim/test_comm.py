"""The communication model makes each schedule once per arguments and reuses it."""

from __future__ import annotations

import numpy as np
import pytest

from simcluster.sim import comm
from simcluster.sim.comm import CommModel
from simcluster.topology import Router, load_cluster
from tests.conftest import ROOT


def _model() -> CommModel:
    cluster = load_cluster(ROOT / "topologies" / "dgx-h100.yaml")
    return CommModel(cluster, Router(cluster), cluster.accelerators, {"g": tuple(range(8))})


def test_a_repeated_collective_or_send_reuses_its_schedule() -> None:
    model = _model()
    first = model.collective("g", "all_reduce", 1 << 18)
    assert model.collective("g", "all_reduce", 1 << 18) is first
    other = model.collective("g", "all_reduce", 2 << 18)
    assert other is not first
    # Twice the bytes, twice every flow's bytes (same algorithm at these sizes).
    assert other.label == first.label
    for a, b in zip(first.phases, other.phases):
        np.testing.assert_array_equal(b.nbytes, 2 * a.nbytes)
    devs = model.devices
    send = model.p2p(devs[0], devs[1], 4096)
    assert model.p2p(devs[0], devs[1], 4096) is send
    assert model.p2p(devs[1], devs[0], 4096) is not send


def test_a_schedule_over_the_flow_limit_is_made_anew_and_the_same(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(comm, "_MEMO_FLOWS", 0)
    model = _model()
    a = model.collective("g", "all_reduce", 1 << 20)
    b = model.collective("g", "all_reduce", 1 << 20)
    assert a is not b
    assert (a.label, a.estimate_us, a.fixed_us) == (b.label, b.estimate_us, b.fixed_us)
    for pa, pb in zip(a.phases, b.phases, strict=True):
        np.testing.assert_array_equal(pa.nbytes, pb.nbytes)


def test_distinct_paths_route_each_path_once_and_merge_to_the_same_flows() -> None:
    """Repeated (path, share) pairs are routed once, counted, and merge into the same
    weighted flows, in the same order, as merging every flow's route."""
    from simcluster.sim.comm import _distinct_paths, _merge

    paths = [("a", "b"), ("b", "c"), ("a", "b"), ("a", "c"), ("b", "c"), ("a", "b"),
             ("c", "a")]
    share = np.array([0.5, 0.5, 0.5, 0.25, 0.5, 0.25, 0.5])
    distinct, sh, counts = _distinct_paths(paths, share)
    assert distinct == [("a", "b"), ("b", "c"), ("a", "c"), ("a", "b"), ("c", "a")]
    assert sh.tolist() == [0.5, 0.5, 0.25, 0.25, 0.5]
    assert counts == [2, 2, 1, 1, 1]
    # Routes: a->c goes a->b->c, so it shares no route with a->b; c->a is a->b's links.
    links = {("a", "b"): [0], ("b", "c"): [1], ("a", "c"): [0, 1], ("c", "a"): [0]}
    route = {p: np.array(v, dtype=np.int32) for p, v in links.items()}
    every = _merge([route[p] for p in paths], share)
    once = _merge([route[p] for p in distinct], sh, counts)
    assert [r.tolist() for r in once[0]] == [r.tolist() for r in every[0]] == [
        [0], [1], [0, 1], [0]]
    assert once[1].tolist() == every[1].tolist() == [0.5, 0.5, 0.25, 0.25]
    assert once[2].tolist() == every[2].tolist() == [3.0, 2.0, 1.0, 1.0]
