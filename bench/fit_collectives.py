"""Fit the collective model's few free parameters to measured nccl-tests all-reduce curves.

Free parameters (everything else is NCCL's published tuning tables, datasheet bandwidths or
measured efficiencies):

- NVLink efficiency (fraction of line rate a ring achieves): one value, all systems;
- NVLS efficiency and NVLS base latency (H100 in-switch reduction);
- a per-call overhead for LL128 and for Simple, added to NCCL's base latency. The
  measured curves all come from 8-GPU servers, so they cannot tell per-call from per-step
  latency (every ring has 14 steps); NCCL's per-step latencies, the only evidence of how
  latency grows with the number of ranks, are kept, and the excess is fitted per call. LL
  gets none: every size where LL would win sits under the host launch cost here, so the
  data cannot tell it;
- one host launch cost per measured system. nccl-tests launches its iterations back to
  back, so the host's per-call cost overlaps the previous call on the device, and an
  iteration takes max(host launch cost, device time) (``collective_perf``).

Objective: per system and size band, the mean |log(predicted busbw / measured busbw)|
divided by the band's tolerance (25 % below 1 MiB, 10 % from 1 MiB, 5 % from 1 GiB: the
accuracy the project aims for), summed over bands and systems. A band thus weighs as much as
its tolerance is tight. The prediction is the model's isolated-collective estimate, which the
simulator reproduces exactly for a lone collective (tests/sim/test_comm.py checks it).

    pip install scipy   # only this script needs it
    python bench/fit_collectives.py [--data ../shared/data/calibration/nccl_allreduce_single_node.csv]

Prints the fitted values, to be copied into ``topology/catalog.py`` (shared parameters) and
the bundled ``topologies/*.yaml`` (per-system overheads).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from simcluster.sim.comm import CommModel
from simcluster.topology import Router, load_cluster
from simcluster.validation import SYSTEMS, measured_time_us, read_nccl_csv

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["nvlink_eff", "nvls_eff", "nvls_base_us", "LL128_us", "Simple_us"]


def predictor(system: str, x: np.ndarray, launch: float):
    """Predicted busbw per size for ``system`` under parameters ``x`` and host launch cost."""
    base = load_cluster(ROOT / "topologies" / SYSTEMS[system])
    spec_network = base.network.model_copy(update={
        "collective_overhead_us": 0.0,
        "host_launch_us": launch,
        "nvls_efficiency": float(min(x[1], 1.0)),
        "nvls_base_latency_us": float(x[2]),
        "protocol_overhead_us": {"LL": 0.0, "LL128": float(x[3]), "Simple": float(x[4])},
        "link_efficiency": {"nvlink": float(min(x[0], 1.0))},
    })
    from simcluster.topology.build import build
    from simcluster.topology.schema import TopologySpec
    from simcluster.yamlfile import read_yaml

    doc = read_yaml(ROOT / "topologies" / SYSTEMS[system], ValueError)
    spec = TopologySpec.model_validate({**doc.data, "network": spec_network.model_dump()})
    cluster = build(spec)
    n = len(cluster.accelerators)
    model = CommModel(cluster, Router(cluster), cluster.accelerators, {"w": tuple(range(n))})
    layout = model.layout("w")

    def busbw(size: int) -> float:
        t = max(launch, model.schedule_on(layout, ("w",), "all_reduce", size).estimate_us)
        return size / t / 1e3 * 2 * (n - 1) / n

    return busbw


# (lo, hi, tolerance) of each size band.
BANDS = ((2**10, 2**20 - 1, 0.25), (2**20, 2**34, 0.10), (2**30, 2**34, 0.05))


def objective(v: np.ndarray, data: dict) -> float:
    x, launches = v[: len(NAMES)], v[len(NAMES):]
    if np.any(v < 0) or x[0] > 1 or x[1] > 1:
        return 1e9
    loss = 0.0
    for (system, points), launch in zip(data.items(), launches):
        f = predictor(system, x, float(launch))
        err = np.array([abs(np.log(f(m.size) / m.busbw_GBps)) for m in points])
        size = np.array([m.size for m in points])
        for lo, hi, tol in BANDS:
            sel = (size >= lo) & (size <= hi)
            if sel.any():
                loss += float(np.mean(err[sel])) / tol
    return loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "calibration"
                    / "nccl_allreduce_single_node.csv")
    ap.add_argument("--maxiter", type=int, default=1500)
    ap.add_argument("--restarts", type=int, default=3)
    args = ap.parse_args()
    data = {k: v for k, v in read_nccl_csv(args.data).items() if k in SYSTEMS}
    # Start each system's host cost at its smallest measured time (the flat part of the
    # curve), and restart from the best point a few times (the max() is not smooth).
    floors = [min(measured_time_us(m, 8) for m in pts) for pts in data.values()]
    x = np.array([0.78, 0.78, 8.4, 10.0, 10.0] + floors)
    bounds = [(0.3, 1.0), (0.3, 1.0), (0.0, 100.0), (0.0, 300.0), (0.0, 300.0)] + [
        (0.0, 100.0)] * len(data)
    for _ in range(args.restarts):
        res = minimize(objective, x, args=(data,), method="Powell", bounds=bounds,
                       options={"maxiter": args.maxiter, "xtol": 1e-4, "ftol": 1e-6})
        x = res.x
    print(f"objective (sum of band errors / tolerance): {res.fun:.4f}")
    for name, value in zip(NAMES, res.x):
        print(f"  {name:>14} = {value:.4f}")
    for system, value in zip(data, res.x[len(NAMES):]):
        print(f"  host launch {system:>18} = {value:.2f} us")


if __name__ == "__main__":
    main()
