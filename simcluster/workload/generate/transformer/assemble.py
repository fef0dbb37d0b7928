"""The workload of a configuration: every stage's template stamped onto its ranks, with their
groups and peers; with the fold, the other replicas get only their data-parallel collectives
(the package docstring)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from simcluster.workload.generate.transformer.config import TransformerConfig
from simcluster.workload.generate.transformer.cp import NEXT_CP, PREV_CP
from simcluster.workload.generate.transformer.host import with_durations, with_host
from simcluster.workload.generate.transformer.metrics import training_meta
from simcluster.workload.generate.transformer.moe import (
    a2a_splits,
    expert_group_names,
    expert_groups,
    uneven_a2a,
)
from simcluster.workload.generate.transformer.stage import _StageBuilder
from simcluster.workload.generate.transformer.template import (
    _DP,
    _EDP,
    _REPL,
    _SHARD,
    TO_EXPERTS,
    _Rank,
)
from simcluster.workload.model import OPS_SCHEMA, Workload, WorkloadMeta
from simcluster.workload.validate import make_workload


def _replica(cfg: TransformerConfig, d: int, c: int) -> str:
    """The replica part of a TP or embedding group's name: ``d<d>``, with context
    parallelism ``d<d>.c<c>``."""
    return f"d{d}" if cfg.cp == 1 else f"d{d}.c{c}"


def _group_names(cfg: TransformerConfig) -> tuple[list[str], dict[str, tuple[int, ...]]]:
    """All group names (dictionary order) and their ranks. The data-parallel group of a TP
    rank and stage spans its ``dp x cp`` ranks (``cp.py``)."""
    T, P, D, C = cfg.tp, cfg.pp, cfg.dp, cfg.cp
    groups: dict[str, tuple[int, ...]] = {}
    rank = cfg.rank
    replicas = cfg.ep_span if cfg.fold else D
    if T > 1:
        for d in range(replicas):
            for c in range(C):
                for p in range(P):
                    groups[f"tp.{_replica(cfg, d, c)}.p{p}"] = tuple(
                        rank(t, p, d, c) for t in range(T))
    if D * C > 1 and not cfg.hybrid:
        for p in range(P):
            for t in range(T):
                groups[f"dp.p{p}.t{t}"] = tuple(sorted(rank(t, p, d, c) for d in range(D)
                                                       for c in range(C)))
    if cfg.hybrid:
        groups.update(_hybrid_groups(cfg))
    if C > 1 and cfg.cp_comm == "a2a":
        for d in range(replicas):
            for p in range(P):
                for t in range(T):
                    groups[f"cp.d{d}.p{p}.t{t}"] = tuple(rank(t, p, d, c) for c in range(C))
    m = cfg.model
    if m.vocab and m.tied_embeddings and P > 1:
        for d in range(replicas):
            for c in range(C):
                for t in range(T):
                    groups[f"emb.{_replica(cfg, d, c)}.t{t}"] = (rank(t, 0, d, c),
                                                                  rank(t, P - 1, d, c))
    if m.moe:
        groups.update(expert_groups(cfg, 1 if cfg.fold else D // cfg.ep_span))
    return list(groups), groups


def _shard_name(cfg: TransformerConfig, t: int, p: int, d: int, c: int) -> tuple[str, str]:
    """Hybrid sharding: the names of (the shard group, the replica group) of rank
    (t, p, d, c): ``shard.p<p>.t<t>.g<d // N>`` and ``repl.p<p>.t<t>.i<d % N>[.c<c>]``."""
    n = cfg.shard_group
    cp = f".c{c}" if cfg.cp > 1 else ""
    return f"shard.p{p}.t{t}.g{d // n}", f"repl.p{p}.t{t}.i{d % n}{cp}"


def _hybrid_groups(cfg: TransformerConfig) -> dict[str, tuple[int, ...]]:
    """The shard groups (``shard_group`` consecutive replicas with their CP ranks; with the
    fold, only replica 0's: the other groups' shard collectives are not emitted) and the
    replica groups (one rank of each shard group, at the same place in it)."""
    T, P, D, C, n = cfg.tp, cfg.pp, cfg.dp, cfg.cp, cfg.shard_group
    out: dict[str, tuple[int, ...]] = {}
    for p in range(P):
        for t in range(T):
            for k in range(1 if cfg.fold else D // n):
                out[_shard_name(cfg, t, p, k * n, 0)[0]] = tuple(sorted(
                    cfg.rank(t, p, d, c) for d in range(k * n, (k + 1) * n) for c in range(C)))
            for i in range(n):
                for c in range(C):
                    out[_shard_name(cfg, t, p, i, c)[1]] = tuple(
                        cfg.rank(t, p, d, c) for d in range(i, D, n))
    return out


def _splits(tpl: dict[str, Any], cfg: TransformerConfig, members: tuple[int, ...],
            rank: int) -> pa.Array:
    """The rank's per-pair bytes of its EP all-to-alls under skew (``moe.a2a_splits``);
    null elsewhere, and everywhere without skew or with padding to capacity (even
    all-to-alls: ``moe.uneven_a2a``)."""
    n = len(tpl["a2a"])
    rows = np.flatnonzero(tpl["a2a"]) if uneven_a2a(cfg) and members else []
    if not len(rows):
        return pa.nulls(n, pa.list_(pa.int64()))
    position = members.index(rank)
    out: list[list[int] | None] = [None] * n
    memo: dict[tuple[int, int], list[int]] = {}
    for i in rows.tolist():
        key = (int(tpl["hot"][i]), int(tpl["a2a"][i]))
        if key not in memo:
            memo[key] = a2a_splits(cfg, position, key[0], key[1] == TO_EXPERTS)
        out[i] = memo[key]
    return pa.array(out, pa.list_(pa.int64()))


def _lut(cfg: TransformerConfig, t: int, p: int, d: int, c: int,
         index: dict[str, int]) -> tuple[int, ...]:
    """Rank (t, p, d, c)'s group per group kind of the template (``template._TP`` ...), as
    dictionary indices (-1: none)."""
    ep, edp = expert_group_names(cfg, t, p, d, c) if cfg.model.moe else ("", "")
    rep = _replica(cfg, d, c)
    shard, repl = _shard_name(cfg, t, p, d, c) if cfg.hybrid else ("", "")
    return (-1, index.get(f"tp.{rep}.p{p}", -1), index.get(f"dp.p{p}.t{t}", -1),
            index.get(f"emb.{rep}.t{t}", -1), index.get(ep, -1), index.get(edp, -1),
            index.get(f"cp.d{d}.p{p}.t{t}", -1), index.get(shard, -1), index.get(repl, -1))


def _stamp(tpl: dict[str, Any], cfg: TransformerConfig, p: int, d: int,
           index: dict[str, int], dictionary: pa.Array,
           members: dict[str, tuple[int, ...]]) -> pa.Table:
    """The template's rows as every TP and CP rank of stage ``p`` and replica ``d``, in rank
    order (``cfg.rank``: CP outer, TP inner; consecutive ranks): rank, groups, peers and an
    uneven EP all-to-all's splits filled in (peer codes: a stage, or the next or previous CP
    rank of the ring). One table for the block, not one per rank: a 100,000-GPU fold stamps
    12,544 blocks instead of 100,352 ranks."""
    T, P, S, C = cfg.tp, cfg.pp, cfg.ep_span, cfg.cp
    n = len(tpl["gkind"])
    tc = [(t, c) for c in range(C) for t in range(T)]
    ranks = np.array([cfg.rank(t, p, d, c) for t, c in tc], dtype=np.int64)
    lut = np.array([_lut(cfg, t, p, d, c, index) for t, c in tc], dtype=np.int32)
    gi = lut[:, tpl["gkind"]].reshape(-1)
    groups = pa.DictionaryArray.from_arrays(pa.array(gi, mask=gi < 0), dictionary)
    peer_stage = tpl["peer"]
    offset = (ranks - ranks[0])[:, None]  # t + T c within the block
    peer_rank = T * C * (d % S + S * (peer_stage + P * (d // S)))[None, :] + offset
    if C > 1:
        nxt = np.array([cfg.rank(t, p, d, (c + 1) % C) for t, c in tc])[:, None]
        prv = np.array([cfg.rank(t, p, d, (c - 1) % C) for t, c in tc])[:, None]
        peer_rank = np.where(peer_stage == NEXT_CP, nxt, peer_rank)
        peer_rank = np.where(peer_stage == PREV_CP, prv, peer_rank)
    peer = pa.array(peer_rank.reshape(-1).astype(np.int32),
                    mask=np.tile(peer_stage == -1, len(tc)))
    cols = dict(tpl["tiled"])
    cols["rank"] = pa.array(np.repeat(ranks, n).astype(np.int32))
    cols["group"] = groups
    cols["peer"] = peer
    if uneven_a2a(cfg) and np.any(tpl["a2a"]):
        cols["splits"] = pa.concat_arrays([
            _splits(tpl, cfg, members.get(expert_group_names(cfg, t, p, d, c)[0], ()), int(r))
            for (t, c), r in zip(tc, ranks)])
    else:
        cols["splits"] = pa.nulls(n * len(tc), pa.list_(pa.int64()))
    return pa.table(cols)


def _ghost(r: _Rank, kinds: tuple[int, ...]) -> dict[str, Any]:
    """The mirror of a folded replica: the template's collectives over group kinds
    ``kinds`` alone, on stream ``dp``, without dependencies or memory (package
    docstring)."""
    ids = np.flatnonzero(np.isin(np.asarray(r.gkind), kinds))
    g = r.table(ids)
    g["cols"]["alloc_bytes"] = pa.array(np.zeros(len(ids), np.int64))
    g["cols"]["free_bytes"] = pa.array(np.zeros(len(ids), np.int64))
    g["cols"]["stream"] = pa.array(["dp"] * len(ids), pa.string())
    return g


def transformer(cfg: TransformerConfig) -> Workload:
    """Generate the workload of ``cfg`` (see the module docstring).

    Raises:
        WorkloadError: an inconsistent configuration.

    Example:
        >>> from simcluster.workload.generate.presets import ModelSpec
        >>> m = ModelSpec("toy", layers=2, hidden=64, heads=4, kv_heads=4, ffn=256, vocab=128,
        ...               seq_len=32)
        >>> wl = transformer(TransformerConfig(model=m, tp=2, pp=2, dp=2, global_batch=8))
        >>> wl.num_ranks, sorted(wl.groups)[:2]
        (8, ['dp.p0.t0', 'dp.p0.t1'])
    """
    cfg = cfg.padded()
    cfg.check()
    names, groups = _group_names(cfg)
    index = {g: i for i, g in enumerate(names)}
    dictionary = pa.array(names or [""], pa.string())
    full = [_StageBuilder(cfg, p).build() for p in range(cfg.pp)]
    tpls = [r.table() for r in full]
    ghosts: list[dict[str, Any]] = []
    far: list[dict[str, Any]] = []  # hybrid: the ghosts outside replica 0's shard group
    if cfg.fold and cfg.dp > cfg.ep_span:
        ghosts = [_ghost(r, (_DP, _EDP, _SHARD, _REPL)) for r in full]
        far = [_ghost(r, (_REPL,)) for r in full] if cfg.hybrid else ghosts
    if cfg.host_us > 0:
        tpls = [with_host(tpl, cfg) for tpl in tpls]
        ghosts = [with_durations(g) for g in ghosts]
        far = [with_durations(g) for g in far] if cfg.hybrid else ghosts
    near = cfg.shard_group if cfg.hybrid else cfg.dp
    for tpl in {id(x): x for x in tpls + ghosts + far}.values():  # each TP and CP rank's copy
        tpl["tiled"] = {name: pa.concat_arrays([col] * (cfg.tp * cfg.cp))
                        for name, col in tpl["cols"].items()}
    parts = []
    for d in range(cfg.dp):
        for p in range(cfg.pp):
            tpl = tpls[p] if d < cfg.ep_span or not cfg.fold else \
                ghosts[p] if d < near else far[p]
            parts.append((cfg.rank(0, p, d, 0),
                          _stamp(tpl, cfg, p, d, index, dictionary, groups)))
    parts = [part for _, part in sorted(parts, key=lambda x: x[0])]
    table = pa.concat_tables(parts)
    table = table.set_column(table.schema.get_field_index("group"), "group",
                             table.column("group").cast(pa.string()))
    table = table.select([f.name for f in OPS_SCHEMA if f.name in table.column_names])
    meta = WorkloadMeta(
        name=cfg.name or (f"{cfg.model.name}-tp{cfg.tp}-pp{cfg.pp}-dp{cfg.dp}"
                          + (f"-cp{cfg.cp}" if cfg.cp > 1 else "")),
        source="simcluster generate transformer",
        world_size=cfg.world,
        extra=training_meta(cfg),
    )
    return make_workload(table, groups, meta, source="generate transformer")
