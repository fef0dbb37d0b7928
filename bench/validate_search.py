"""Search quality: does `search` find the optimum of a space small enough to sweep?

For each case, `search` runs first (fresh folder, default budget: a quarter of the
configurations that fit), then every configuration that fits is simulated in full (the
exhaustive sweep; the search's full simulations are reused, being the same points). It
reports the exhaustive optimum, what the search found, the gap, how many configurations the
search simulated, and how well the free analytic estimate ranks the space (Spearman).

    python bench/validate_search.py [--case gpt13b-time gpt13b-cost] [--workers 2] [--markdown]

Default cases: a 13B GPT (GPT-3 paper dimensions: 40 layers, hidden 5120, 40 heads) with a
global batch of 64 x 2,048 tokens on `topologies/h100-2node.yaml` (16 H100), objective time
(every GPU used) and objective cost (also 8 and 4 GPUs). ``moe-time``: a Mixtral-8x7B-like
model (16 layers) searched over expert parallelism too; ``cp-time``: Llama 3 8B's layer at
16k tokens (8 layers) searched over context parallelism too, and ``cp128k-time`` at 128k (``MOE``, ``CP_SPACE``). The
co-search cases
(`cosearch-time`, `cosearch-cost`) search the 13B's width with 10 layers and 32 sequences
jointly with the hardware of `COSEARCH_HW` (peak FLOP/s, HBM capacity, NIC bandwidth, a
linear cost model and a budget) on a smaller parallel space; they share one folder, so the second reuses the first's
exhaustive sweep. They also report how many points of the exhaustive Pareto front (step time
against USD per 1M tokens) the search's front holds. ``domain-time`` and ``domain-cost``
co-search the scale-up domain's size (4, 8 or 16 GPUs) and NVLink bandwidth with TP up to
16 for Llama 2 7B's layer (``DOMAIN_HW``, ``DOMAIN_SPACE``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from simcluster.analysis.sweep import pareto_front
from simcluster.search import SearchOptions, SearchSpace, search
from simcluster.search.cosearch import cosearch
from simcluster.search.hardware import HardwareSpec
from simcluster.sweep.runner import close_client, make_client, run_points
from simcluster.sweep.spec import Point, point_id

ROOT = Path(__file__).resolve().parents[1]
GPT13B = {"preset": "gpt3-175b", "layers": 40, "hidden": 5120, "heads": 40,
          "global_batch": 64}
# Mixtral 8x7B's layer (8 experts, top-2) with 16 layers and 32 sequences of 4,096 tokens:
# the space adds ep (every divisor of 8 that fits the layout) to TP, PP, micro-batch,
# recompute and ZeRO; memory prunes a quarter of the space (ep 1 needs the most).
MOE = {"preset": "mixtral-8x7b", "layers": 16, "global_batch": 32}
MOE_SPACE = SearchSpace(tp=(1, 2, 4, 8), pp=(1, 2, 4), micro_batch=(1, 2),
                        recompute=("none", "full"), zero=(0, 1), interleave=(1,))
# Llama 3 8B's layer with 8 layers and 16 sequences of 16,384 tokens: the space adds cp
# (ring attention) 1, 2, 4, 8.
LONG = {"preset": "llama3-8b", "layers": 8, "seq_len": 16384, "global_batch": 16}
# The same at 128k tokens (Llama 3.1's long-context length): memory prunes a fifth of it.
LONG128K = {**LONG, "seq_len": 131072}
CP_SPACE = SearchSpace(tp=(1, 2, 4, 8), pp=(1, 2, 4), cp=(1, 2, 4, 8), micro_batch=(1,),
                       recompute=("none", "full"), zero=(0, 1), interleave=(1,))
DEFAULT_SPACE = {"time": SearchSpace(pp=(1, 2, 4, 8), micro_batch=(1, 2, 4)),
                 "cost": SearchSpace(pp=(1, 2, 4, 8), micro_batch=(1, 2, 4), fewer_gpus=True)}
CASES = {
    "gpt13b-time": (GPT13B, "time", DEFAULT_SPACE["time"]),
    "gpt13b-cost": (GPT13B, "cost", DEFAULT_SPACE["cost"]),
    "moe-time": (MOE, "time", MOE_SPACE),
    "cp-time": (LONG, "time", CP_SPACE),
    "cp128k-time": (LONG128K, "time", CP_SPACE),
}
# The 13B's width with 10 layers and half the batch: its steps simulate ~8x faster, and HBM
# capacity still decides what fits (53 of 80 configurations in 16 GiB, all in 80).
GPT13B_10L = {**GPT13B, "layers": 10, "global_batch": 32}
TOPOLOGY = ROOT / "topologies" / "h100-2node.yaml"
COSEARCH_HW = HardwareSpec.model_validate({
    "space": {"peak_tflops": [989.5, 1979], "hbm_GiB": [16, 80], "scale_out_GBps": [25, 100]},
    "cost": {"base": 1.0, "per_unit": {"peak_tflops": 0.002, "hbm_GiB": 0.02,
                                       "scale_out_GBps": 0.01}},
    "budget": {"usd_per_hour": 7.0}})
COSEARCH_SPACE = SearchSpace(tp=(1, 2, 4, 8), pp=(1, 2, 4), micro_batch=(1, 2),
                             recompute=("none", "full"), zero=(0, 1), interleave=(1,))
# The scale-up domain: the 16 GPUs as 4 servers of 4, 2 of 8 or 1 domain of 16 (NICs per GPU
# kept), NVLink at 450 or 900 GB/s; TP up to 16, where the domain holds it. Llama 2 7B's
# layer (32 heads) with 8 layers and 32 sequences of 1,024 tokens.
LLAMA7B_8L = {"preset": "llama2-7b", "layers": 8, "seq_len": 1024, "global_batch": 32}
DOMAIN_HW = HardwareSpec.model_validate({
    "space": {"scale_up_size": [4, 8, 16], "scale_up_GBps": [450, 900]},
    "cost": {"base": 1.0, "per_unit": {"scale_up_size": 0.05, "scale_up_GBps": 0.002}}})
DOMAIN_SPACE = SearchSpace(tp=(1, 2, 4, 8, 16), pp=(1, 2, 4), micro_batch=(1, 2),
                           recompute=("none", "full"), zero=(0, 1), interleave=(1,))
# name: (objective, model, hardware, parallel space, folder: cases of one folder share the
# exhaustive sweep)
COSEARCH = {
    "cosearch-time": ("time", GPT13B_10L, COSEARCH_HW, COSEARCH_SPACE, "cosearch"),
    "cosearch-cost": ("cost", GPT13B_10L, COSEARCH_HW, COSEARCH_SPACE, "cosearch"),
    "domain-time": ("time", LLAMA7B_8L, DOMAIN_HW, DOMAIN_SPACE, "domain"),
    "domain-cost": ("cost", LLAMA7B_8L, DOMAIN_HW, DOMAIN_SPACE, "domain"),
}


def _rank(values: list[float]) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    return ranks


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = _rank(a), _rank(b)
    return float(np.corrcoef(ra, rb)[0, 1])


def run_case(name: str, fixed: dict[str, Any], objective: str, space: SearchSpace,
             client: Any, folder: Path) -> dict[str, Any]:
    options = SearchOptions(objective=objective, space=space)
    out = folder / name
    t0 = time.perf_counter()
    report = search(fixed, TOPOLOGY, 16, out, options, client=client)
    return _against_exhaustive(name, objective, report, fixed, client, out,
                               time.perf_counter() - t0)


def run_cosearch(name: str, client: Any, folder: Path) -> dict[str, Any]:
    objective, fixed, hardware, space, sub = COSEARCH[name]
    options = SearchOptions(objective=objective, space=space)
    out = folder / sub
    t0 = time.perf_counter()
    co = cosearch(fixed, TOPOLOGY, 16, out, hardware, options, client=client)
    r = _against_exhaustive(name, objective, co.search, fixed, client, out,
                            time.perf_counter() - t0)
    found = {t.full["point_id"] for t in co.front if t.full}
    exhaustive = {row["point_id"] for row in pareto_front(r.pop("rows"), "step_time_us",
                                                          "usd_per_1m_tokens")}
    return {**r, "variants": co.variants, "over_budget": co.over_budget,
            "front": len(found), "exhaustive_front": len(exhaustive),
            "front_found": len(found & exhaustive),
            "limits": [lim.param for lim in co.limits]}


def _against_exhaustive(name: str, objective: str, report: Any, fixed: dict[str, Any],
                        client: Any, out: Path, search_s: float) -> dict[str, Any]:
    feasible = [t for t in report.trials if t.infeasible is None]
    base = {"topology": str(TOPOLOGY.resolve()),
            "workload": {"generate": "transformer", **fixed}, "placement": "packed",
            "price": None}
    t0 = time.perf_counter()
    rows = run_points([Point(point_id(t.varied(), base), t.varied()) for t in feasible],
                      base, TOPOLOGY.parent, out, client).rows
    sweep_s = time.perf_counter() - t0
    col = "step_time_us" if objective == "time" else "usd_per_1m_tokens"
    ok = [(t, r) for t, r in zip(feasible, rows) if r["status"] == "ok"]
    best_t, best_r = min(ok, key=lambda tr: tr[1][col])
    found = report.best[0]
    order = sorted(r[col] for _, r in ok)
    return {
        "case": name, "objective": objective, "configurations": report.configurations,
        "feasible": report.feasible, "ran": len(ok),
        "simulated": report.simulated, "simulations": report.simulations,
        "share": report.simulated / report.feasible,
        "optimum": {**best_t.varied(), col: best_r[col]},
        "found": {**found.varied(), col: found.full[col]},
        "gap": found.full[col] / best_r[col] - 1,
        "found_rank": order.index(found.full[col]) + 1,
        "spearman_estimate": spearman([t.estimate_objective for t, _ in ok],
                                      [r[col] for _, r in ok]),
        "search_s": search_s, "exhaustive_s": sweep_s, "rows": [r for _, r in ok],
    }


def _cfg(d: dict[str, Any]) -> str:
    hw = "".join(f" {k[3:]} {v:g}" for k, v in d.items() if k.startswith("hw."))
    par = "".join(f" {k.upper()} {d[k]}" for k in ("cp", "ep") if k in d)
    return (f"TP {d['tp']} PP {d['pp']} DP {d['dp']}{par} mb {d['micro_batch']} "
            f"{d['schedule']} rc {d['recompute']} ZeRO {d['zero']}{hw}")


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| case | configurations (fit) | simulated by search | exhaustive optimum | "
             "search found | gap | rank | Spearman (estimate) |",
             "|---|---:|---:|---|---|---:|---:|---:|"]
    for r in results:
        col = "step_time_us" if r["objective"] == "time" else "usd_per_1m_tokens"
        unit = (lambda v: f"{v / 1e3:,.1f} ms") if col == "step_time_us" else (
            lambda v: f"${v:.4f}/1M tok")
        lines.append(
            f"| {r['case']} | {r['configurations']} ({r['feasible']}) | {r['simulated']} "
            f"({100 * r['share']:.0f}%; {r['simulations']} runs) | {_cfg(r['optimum'])}: "
            f"{unit(r['optimum'][col])} | {_cfg(r['found'])}: {unit(r['found'][col])} | "
            f"{100 * r['gap']:+.2f}% | {r['found_rank']} of {r['ran']} | "
            f"{r['spearman_estimate']:.3f} |")
    for r in results:
        if "front" in r:
            lines.append(f"\n{r['case']}: {r['variants']} hardware variants within the budget "
                         f"({r['over_budget']} over it); the search's front has {r['front']} "
                         f"points, {r['front_found']} of the {r['exhaustive_front']} of the "
                         f"exhaustive front; limits: {', '.join(map(str, r['limits']))}.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", nargs="*", default=[*CASES, *COSEARCH],
                    choices=[*CASES, *COSEARCH])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", type=Path, help="keep the points here (default: a temp folder)")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="validate-search-"))
    client = make_client(None, args.workers)
    results = []
    try:
        for name in args.case:
            if name in COSEARCH:
                r = run_cosearch(name, client, folder)
            else:
                r = run_case(name, *CASES[name], client, folder)
                r.pop("rows")
            results.append(r)
            print(json.dumps(r, indent=1, default=str), flush=True)
    finally:
        close_client(client)
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    if args.markdown:
        print(markdown(results))
    assert all(r["gap"] <= 0.02 and r["share"] <= 0.25 for r in results), "target missed"


if __name__ == "__main__":
    main()
