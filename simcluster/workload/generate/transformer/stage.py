"""One stage's steps: the schedule's forward and backward units in order, with the pipeline
exchanges, gradient reductions and the optimizer (:class:`_StageBuilder`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from simcluster.workload.generate.costs import Cost
from simcluster.workload.generate.schedules import Unit, stage_units
from simcluster.workload.generate.transformer.comm import _CommOps
from simcluster.workload.generate.transformer.memory import (
    _layer_param_bytes,
    stage_params,
    static_memory,
)
from simcluster.workload.generate.transformer.metrics import optimizer_bytes_per_param
from simcluster.workload.generate.transformer.moe import expert_layout
from simcluster.workload.generate.transformer.template import _DP, _EDP, _EMB, _Rank


class _StageBuilder(_CommOps):
    """Emits the ops of one TP rank of one pipeline stage (every TP rank is the same)."""

    def build(self) -> _Rank:
        cfg, r = self.cfg, self.r
        for step in range(cfg.steps):
            r.cur_step = step
            self._step(first=step == 0)
        return r

    def _step(self, first: bool) -> None:
        """One training step: parameter gathers, the schedule's units, gradient reduction,
        optimizer."""
        cfg = self.cfg
        st = _StepState(pending_alloc=sum(static_memory(cfg, self.stage).values())
                        if first else 0)
        self._param_gathers(st)
        units = stage_units(cfg.schedule_name, self.stage, cfg.pp, cfg.micro_batches,
                            cfg.chunks)
        last_bwd = {u.chunk: i for i, u in enumerate(units) if not u.forward}
        seen: set[int] = set()
        for i, u in enumerate(units):
            if u.forward:
                self._forward(st, u, first_of_chunk=u.chunk not in seen)
                seen.add(u.chunk)
            else:
                self._backward(st, u, last_of_chunk=i == last_bwd[u.chunk])
        self._finish(st)

    def _forward(self, st: _StepState, u: Unit, first_of_chunk: bool) -> None:
        cfg, P, stage = self.cfg, self.cfg.pp, self.stage
        vs = u.chunk * P + stage
        z3 = cfg.dp_ranks > 1 and cfg.zero >= 3
        if vs == 0:
            deps = [st.gather[-1]] if first_of_chunk and -1 in st.gather else []
            if cfg.model.vocab:
                deps = [self.embed_fwd(deps, st.take_alloc())]
        else:
            deps = [self._recv(f"recv_act.c{u.chunk}", stage - 1 if stage else P - 1,
                               "pp_fwd_recv")]
        prev_first = None
        for layer in cfg.layers_of(vs):
            if first_of_chunk:
                deps = deps + [g[layer] for g in (st.gather, st.egather) if layer in g]
            if z3:
                deps = deps + [self._z3_gather(f"L{layer}.z3_ag_fwd", prev_first)]
            prev_first, last = self.layer_fwd(layer, "fwd", deps,
                                              self.keep[layer] + st.take_alloc())
            if z3:
                self.r.add_free(last, _layer_param_bytes(cfg))
            deps = [last]
        if vs == self.nv - 1:
            if cfg.model.vocab:
                wait = [st.gather[-2]] if first_of_chunk and -2 in st.gather else []
                deps = [self.head_fwd(deps + wait)]
        else:
            self._send(f"send_act.c{u.chunk}", stage + 1 if stage < P - 1 else 0,
                       "pp_fwd_send", deps[0])
        st.last_compute = deps[0]

    def _backward(self, st: _StepState, u: Unit, last_of_chunk: bool) -> None:
        cfg, r, P, stage = self.cfg, self.r, self.cfg.pp, self.stage
        vs = u.chunk * P + stage
        sp = stage_params(cfg, stage)
        z3 = cfg.dp_ranks > 1 and cfg.zero >= 3
        ready: list[tuple[int, int]] = []  # (params, op after which their grads are done)
        eready: list[tuple[int, int]] = []  # the same for the routed experts
        deps: list[int] | None = None
        if vs == self.nv - 1:
            if cfg.model.vocab:
                st.emb_ready = self.head_bwd(None)
                ready.append((sp.head, st.emb_ready))
                deps = [st.emb_ready]
        else:
            deps = [self._recv(f"recv_grad.c{u.chunk}", stage + 1 if stage < P - 1 else 0,
                               "pp_bwd_recv")]
        prev_first = None
        for layer in reversed(cfg.layers_of(vs)):
            extra = 0
            if z3:
                deps = (deps or []) + [self._z3_gather(f"L{layer}.z3_ag_bwd", prev_first)]
                extra = _layer_param_bytes(cfg)
            prev_first, last = self.layer_bwd(layer, deps, free_extra=extra)
            deps = [last]
            dense, experts = self._split(layer)
            ready.append((dense, last))
            if experts:
                eready.append((experts, last))
            if z3:
                self._sharded_reduce(f"L{layer}.z3_rs", cfg.gbytes * dense, last)
        assert deps is not None
        if vs == 0:
            if cfg.model.vocab:
                st.emb_ready = self.embed_bwd(deps)
                ready.append((sp.embedding, st.emb_ready))
                deps = [st.emb_ready]
        else:
            self._send(f"send_grad.c{u.chunk}", stage - 1 if stage else P - 1, "pp_bwd_send",
                       deps[0])
        st.last_compute = deps[0]
        if cfg.dp_ranks == 1 or z3 or not (cfg.zero == 2 or last_of_chunk):
            return
        for k, (params, op) in enumerate(self._buckets(ready)):
            name = f"dp.grad.c{u.chunk}.b{k}"
            if cfg.dp_overlap:
                self._dp_reduce(name, params, op)
            else:
                st.deferred.append((name, params, _DP))
        if self._expert_dp <= 1 or not eready:
            return
        for k, (params, op) in enumerate(self._buckets(eready)):
            name = f"edp.grad.c{u.chunk}.b{k}"
            if cfg.dp_overlap:
                self._dp_reduce(name, params, op, _EDP)
            else:
                st.deferred.append((name, params, _EDP))

    def _finish(self, st: _StepState) -> None:
        """Deferred gradient reduction, ZeRO-3 head/embedding reduction, tied-embedding
        all-reduce, then the optimizer after all of it."""
        cfg, r, m = self.cfg, self.r, self.cfg.model
        sp = stage_params(cfg, self.stage)
        for name, params, gkind in st.deferred:
            self._dp_reduce(name, params, st.last_compute, gkind)
        if st.z3_persist:
            self._sharded_reduce("dp.z3_rs_embed_head", cfg.gbytes * (sp.embedding + sp.head),
                                 st.last_compute)
        deps = [st.last_compute]
        if m.vocab and m.tied_embeddings and cfg.pp > 1 and self.stage in (0, cfg.pp - 1):
            size = cfg.gbytes * m.vocab * m.hidden // cfg.tp
            deps.append(r.coll("emb.grad_allreduce", "all_reduce", size, _EMB, "dp",
                               deps=[st.emb_ready if st.emb_ready >= 0 else st.last_compute]))
        dp_ops = [k for k, s in enumerate(r.stream) if s == "dp" and r.step[k] == r.cur_step]
        deps.extend(dp_ops[-1:])
        n = sp.dense // (cfg.shard_ranks if cfg.zero >= 1 else 1)
        if sp.experts:
            n += sp.experts // (expert_layout(cfg).edp if cfg.zero >= 1 else 1)
        per = optimizer_bytes_per_param(cfg.gbytes, loss_scaling=cfg.dtype == "fp16")
        r.compute("optimizer", Cost(15.0 * n, per * n), "fp32", deps=deps, free=st.z3_persist)


@dataclass
class _StepState:
    """What one stage's step carries between units."""

    pending_alloc: int = 0  # static memory, taken by the step's first op
    gather: dict[int, int] = field(default_factory=dict)  # layer -> its parameter gather op
    egather: dict[int, int] = field(default_factory=dict)  # the same for its experts
    z3_persist: int = 0  # ZeRO-3: gathered embedding and head bytes
    deferred: list[tuple[str, int, int]] = field(default_factory=list)  # name, params, gkind
    last_compute: int = -1
    emb_ready: int = -1

    def take_alloc(self) -> int:
        """The pending static allocation, once."""
        out, self.pending_alloc = self.pending_alloc, 0
        return out
