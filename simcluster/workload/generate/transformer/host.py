"""The host timeline of a generated stage (``TransformerConfig.host_us``): every op of the
template is launched by the rank's CPU thread at ``host_us`` (:mod:`simcluster.workload.host`).

- **Where the host blocks**: before the optimizer of each step, as Megatron-LM does when it
  reads the gradient norm (``clip_grad_norm``: ``total_norm.item()``) and, with fp16, the
  found-inf flag: the host waits for every GPU op issued before it, so the next step's
  launches start from a drained GPU.
- **CUDA graphs** (``cuda_graphs``): the ops of one layer's forward or backward (named
  ``L<layer>.<pass>.*``) are one captured graph, launched once at ``host_us``; the other ops
  are launched one by one.

Only the replicas stored in full get host ops: a folded replica's mirror of its
data-parallel collectives (``assemble.py``) has no host thread to wait for.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from simcluster.workload.generate.transformer.config import TransformerConfig
from simcluster.workload.host import add_host_timeline


def graph_keys(names: list[str]) -> list[str]:
    """The CUDA graph each op belongs to: ``L<layer>.<pass>`` for a layer's ops, else ''
    (launched alone).

    Example:
        >>> graph_keys(["embed", "L0.fwd.ln1", "L0.fwd.qkv", "L12.bwd.fc2", "optimizer"])
        ['', 'L0.fwd', 'L0.fwd', 'L12.bwd', '']
    """
    keys = []
    for name in names:
        parts = name.split(".", 2)
        layer = parts[0]
        keys.append(".".join(parts[:2]) if len(parts) == 3 and layer[:1] == "L"
                    and layer[1:].isdigit() else "")
    return keys


def host_costs(cfg: TransformerConfig, names: list[str]) -> np.ndarray:
    """Per op, the host us to launch it: ``host_us``, or with CUDA graphs only for the
    first op of each graph (consecutive ops with the same key)."""
    cost = np.full(len(names), float(cfg.host_us))
    if cfg.cuda_graphs and names:
        keys = graph_keys(names)
        same = np.array([k != "" and k == p for k, p in zip(keys[1:], keys[:-1])], dtype=bool)
        cost[1:][same] = 0.0
    return cost


def with_host(tpl: dict[str, Any], cfg: TransformerConfig) -> dict[str, Any]:
    """A stage template (``_Rank.table()``) with its host timeline (module docstring)."""
    cols = tpl["cols"]
    table = pa.table(cols)
    names = cols["name"].to_pylist()
    sync = np.array([name == "optimizer" for name in names], dtype=bool)
    new, pos = add_host_timeline(table, host_costs(cfg, names), sync)
    out: dict[str, Any] = {
        "cols": {name: new.column(name).combine_chunks() for name in new.column_names}}
    for key, per_op in tpl.items():   # per-op codes (group kind, peer, all-to-all ...):
        if key != "cols":             # a host op has none (-1 for a peer, 0 elsewhere)
            arr = np.asarray(per_op)
            out[key] = np.full(new.num_rows, -1 if key == "peer" else 0, dtype=arr.dtype)
            out[key][pos] = arr
    return out


def with_durations(tpl: dict[str, Any]) -> dict[str, Any]:
    """A template without host ops given the (null) ``duration_us`` column the host
    templates carry, so that all stamped ranks share one schema."""
    cols = dict(tpl["cols"])
    cols.setdefault("duration_us", pa.nulls(len(cols["name"]), pa.float64()))
    return {**tpl, "cols": cols}
