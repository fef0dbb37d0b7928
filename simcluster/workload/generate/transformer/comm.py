"""A stage's pipeline and data-parallel communication: activations and gradients sent
between (virtual) stages, gradient buckets reduced over data parallelism, and the ZeRO
parameter gathers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from simcluster.workload.generate.transformer.memory import _layer_param_bytes, stage_params
from simcluster.workload.generate.transformer.moe import expert_layout, separate_expert_dp
from simcluster.workload.generate.transformer.moe_ops import _MoeOps
from simcluster.workload.generate.transformer.template import _DP, _EDP, _REPL, _SHARD, _TP

if TYPE_CHECKING:
    from simcluster.workload.generate.transformer.stage import _StepState


class _CommOps(_MoeOps):
    """Pipeline and data-parallel ops of :class:`~.stage._StageBuilder`."""

    # -- pipeline ------------------------------------------------------------------------------

    def _p2p_bytes(self) -> float:
        return self.e_th / self.cfg.tp if (self.cfg.sp or (self.tp and self.cfg.scatter_gather)) \
            else self.e_th

    def _recv(self, name: str, peer: int, stream: str) -> int:
        op = self.r.p2p("recv", name, self._p2p_bytes(), peer, stream, grad="bwd" in stream)
        if self.tp and not self.cfg.sp and self.cfg.scatter_gather:
            op = self.r.coll(f"{name}.gather", "all_gather", self.e_th, _TP, "tp", deps=[op])
        return op

    def _send(self, name: str, peer: int, stream: str, dep: int) -> int:
        return self.r.p2p("send", name, self._p2p_bytes(), peer, stream, grad="bwd" in stream,
                          deps=[dep])

    # -- data parallel -------------------------------------------------------------------------

    def _dp_reduce(self, name: str, params: int, dep: int, gkind: int = _DP) -> int:
        """Reduce a gradient bucket over the data-parallel group (``_EDP``: the
        expert-data-parallel one)."""
        if self.cfg.zero == 0 or gkind != _DP:
            coll = "all_reduce" if self.cfg.zero == 0 else "reduce_scatter"
            return self.r.coll(name, coll, self.cfg.gbytes * params, gkind, "dp", deps=[dep])
        return self._sharded_reduce(name, self.cfg.gbytes * params, dep)

    @property
    def _zk(self) -> int:
        """The group kind ZeRO shards over: the shard group with hybrid sharding, else the
        data-parallel group."""
        return _SHARD if self.cfg.hybrid else _DP

    def _sharded_reduce(self, name: str, nbytes: int, dep: int) -> int:
        """Reduce-scatter ``nbytes`` of gradients over the ZeRO group; with hybrid sharding,
        then all-reduce this rank's shard (``nbytes / shard_ranks``, rounded up as FSDP
        pads its flat parameters) over the shard groups. Returns the last op."""
        cfg = self.cfg
        op = self.r.coll(name, "reduce_scatter", nbytes, self._zk, "dp", deps=[dep])
        if not cfg.hybrid:
            return op
        return self.r.coll(f"{name}.ar", "all_reduce", -(-nbytes // cfg.shard_ranks), _REPL,
                           "dp", deps=[op])

    @property
    def _expert_dp(self) -> int:
        """Size of the group expert gradients are reduced over when it is their own (0:
        they go with the dense ones; 1: nothing to reduce)."""
        if not separate_expert_dp(self.cfg):
            return 0
        return expert_layout(self.cfg).edp

    def _split(self, layer: int) -> tuple[int, int]:
        """(params reduced over DP, params reduced over the expert DP group) of a layer."""
        dense, experts = self._layer_params(layer), self._expert_params(layer)
        return (dense + experts, 0) if self._expert_dp == 0 else (dense, experts)

    def _buckets(self, ready: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Group (params, ready op) in backward order into buckets of ``cfg.bucket_size``;
        returns (params, op after which the bucket is complete) (:meth:`_fill`)."""
        return [(params, ops[-1]) for params, ops in self._fill(ready)]

    def _fill(self, items: list[tuple[int, int]]) -> list[tuple[int, list[int]]]:
        """Group (params, key) in order into buckets of ``cfg.bucket_size`` (with
        ``bucket_split`` exactly that many each, the rest carried over); returns (params,
        the keys of the items in the bucket, in order: the last completes it)."""
        size, split = self.cfg.bucket_size, self.cfg.bucket_split
        out: list[tuple[int, list[int]]] = []
        acc, members = 0, []
        for params, key in items:
            acc += params
            members.append(key)
            while acc >= size:
                take = size if split else acc
                out.append((take, members))
                acc -= take
                members = [key] if acc else []
        if acc:
            out.append((acc, members))
        return out

    def _param_gathers(self, st: _StepState) -> None:
        """ZeRO-1/2: the updated parameters all-gathered per gradient bucket, model chunk by
        model chunk, in forward order (the steady state: they overlap this step's first
        forward). ZeRO-3: the embedding and head gathered once for the step."""
        cfg, r = self.cfg, self.r
        sp = stage_params(cfg, self.stage)
        if cfg.dp_ranks > 1 and cfg.zero in (1, 2):
            for c in range(cfg.chunks):
                vs = c * cfg.pp + self.stage
                order: list[tuple[int, int]] = []  # (params, layer; -1 embedding, -2 head)
                if vs == 0:
                    order.append((sp.embedding, -1))
                order.extend((self._split(layer)[0], layer) for layer in cfg.layers_of(vs))
                if vs == self.nv - 1:
                    order.append((sp.head, -2))
                self._gathers(st, order, self._zk, "dp.param_ag", st.gather)
                if self._expert_dp > 1:
                    self._gathers(st, [(self._split(layer)[1], layer)
                                       for layer in cfg.layers_of(vs)],
                                  _EDP, "edp.param_ag", st.egather)
        if cfg.dp_ranks > 1 and cfg.zero >= 3 and (sp.embedding or sp.head):
            st.z3_persist = 2 * (sp.embedding + sp.head)
            op = r.coll("dp.z3_ag_embed_head", "all_gather", st.z3_persist, self._zk, "dp",
                        alloc=st.take_alloc() + st.z3_persist)
            st.gather[-1] = st.gather[-2] = op

    def _gathers(self, st: _StepState, order: list[tuple[int, int]], gkind: int,
                 prefix: str, into: dict[int, int]) -> None:
        """All-gather the parameters of ``order`` (``(params, layer)`` in forward order) bucket
        by bucket in forward order, the buckets being the gradient buckets of the same
        layers (formed in backward order as :meth:`_buckets` forms them), as Megatron-Core's
        distributed optimizer gathers its ParamAndGradBuffer's buckets in reverse
        (``_get_model_param_buffer_dp_views``, distrib_optimizer.py, core_r0.8.0); record
        in ``into`` the gather after which each layer has all its parameters (a layer split
        over two buckets: the later one)."""
        buckets = self._fill([(params, layer) for params, layer in reversed(order) if params])
        n = len(set(into.values()))
        for take, layers in reversed(buckets):
            op = self.r.coll(f"{prefix}{n}", "all_gather", 2 * take, gkind, "dp",
                             alloc=st.take_alloc())
            n += 1
            into.update(dict.fromkeys(layers, op))

    def _z3_gather(self, name: str, after: int | None) -> int:
        """ZeRO-3: gather one layer's parameters (prefetch: once ``after`` has started)."""
        size = _layer_param_bytes(self.cfg)
        return self.r.coll(name, "all_gather", size, self._zk, "dp",
                           deps=[after] if after is not None else None, alloc=size)
