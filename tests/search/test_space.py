"""The search space: which configurations exist, and which fit in memory."""

from __future__ import annotations

from simcluster.search.space import SearchSpace, candidates

SMALL = {"preset": "llama2-7b", "layers": 4, "seq_len": 512, "global_batch": 8}
TINY_SPACE = SearchSpace(tp=(1, 2), pp=(1, 2), micro_batch=(1, 2), recompute=("none", "full"),
                         zero=(0, 1), interleave=(1,))
GIB = 2**30


def _key(c) -> tuple:
    p = c.params
    return (p["tp"], p["pp"], p["dp"], p["micro_batch"], p["recompute"], p["zero"])


def test_enumeration_by_hand() -> None:
    # 8 GPUs: (tp, pp) in {1,2}^2 gives dp 8, 4, 4, 2. The batch of 8 splits over
    # micro_batch x dp except mb 2 with dp 8: 7 layouts, x 2 recompute x 2 ZeRO = 28.
    cands = candidates(SMALL, 8, 8, 80 * GIB, TINY_SPACE)
    assert len(cands) == 28 and all(c.infeasible is None for c in cands)
    assert (1, 1, 8, 2, "none", 0) not in {_key(c) for c in cands}
    assert all(c.params["sequence_parallel"] == (c.params["tp"] > 1) for c in cands)
    # TP wider than a server is never tried: with 1 GPU per server only tp 1 remains.
    assert {c.params["tp"] for c in candidates(SMALL, 8, 1, 80 * GIB, TINY_SPACE)} == {1}


def test_fewer_gpus_and_interleaving() -> None:
    space = SearchSpace(tp=(1,), pp=(1, 2), micro_batch=(1,), recompute=("none",), zero=(0,),
                        interleave=(1, 2), fewer_gpus=True)
    cands = candidates({**SMALL, "global_batch": 16}, 8, 8, 80 * GIB, space)
    worlds = sorted({c.params["tp"] * c.params["pp"] * c.params["dp"] for c in cands})
    assert worlds == [2, 4, 8]
    # Interleaving only with a pipeline, and only where the micro-batches fill it.
    assert all(c.params["pp"] == 2 for c in cands if c.params["schedule"] != "1f1b")
    assert any(c.params["schedule"] == "1f1b-interleaved:2" for c in cands)


def test_selective_is_dropped_with_flash_attention_only() -> None:
    space = SearchSpace(tp=(1,), pp=(1,), micro_batch=(1,), zero=(0,), interleave=(1,))
    flash = {c.params["recompute"] for c in candidates(SMALL, 8, 8, 80 * GIB, space)}
    plain = {c.params["recompute"] for c in candidates({**SMALL, "flash_attention": False}, 8,
                                                      8, 80 * GIB, space)}
    assert flash == {"none", "full"} and plain == {"none", "selective", "full"}


def test_memory_pruning_names_the_stage() -> None:
    # 7B at full depth: ZeRO-0 on one stage needs ~14 GB weights + 28 GB fp32 grads + 84 GB
    # Adam: more than 80 GiB; ZeRO-1 over 8 replicas or pipelining brings it under.
    space = SearchSpace(tp=(1,), pp=(1, 4), micro_batch=(1,), recompute=("full",),
                        zero=(0, 1), interleave=(1,))
    cands = {(c.params["pp"], c.params["zero"]): c
             for c in candidates({"preset": "llama2-7b", "global_batch": 8}, 8, 8, 80 * GIB,
                                 space)}
    assert "pipeline stage 0 needs" in cands[(1, 0)].infeasible
    assert cands[(1, 1)].infeasible is None and cands[(4, 0)].infeasible is None


def test_cp_is_enumerated_only_when_asked() -> None:
    # Default space: no configuration has a cp setting (existing searches are unchanged).
    assert all("cp" not in c.params for c in candidates(SMALL, 8, 8, 80 * GIB, TINY_SPACE))
    # cp 2 on 8 GPUs: (tp, pp) in {1,2}^2 gives dp 4, 2, 2, 1; micro-batch 1 and 2 split
    # the batch of 8 for all four: 8 layouts x 2 recompute x 2 ZeRO (the 2 CP ranks of a
    # replica shard it) = 32, beside the 28 without CP.
    space = SearchSpace(**{**TINY_SPACE.__dict__, "cp": (1, 2)})
    cands = candidates(SMALL, 8, 8, 80 * GIB, space)
    with_cp = [c for c in cands if c.params.get("cp") == 2]
    assert len(cands) == 60 and len(with_cp) == 32
    assert {(c.params["tp"], c.params["pp"], c.params["dp"]) for c in with_cp} == {
        (1, 1, 4), (2, 1, 2), (1, 2, 2), (2, 2, 1)}


MIXTRAL = {"preset": "mixtral-8x7b", "layers": 2, "global_batch": 16}
MOE_SPACE = SearchSpace(tp=(1, 2), pp=(1,), micro_batch=(1,), recompute=("none",),
                        zero=(1,), interleave=(1,))


def test_moe_enumerates_ep_by_hand() -> None:
    # 8 experts on 16 GPUs: tp 1 (dp 16) and tp 2 (dp 8) each take ep 1, 2, 4, 8 (the
    # divisors of 8 that divide dp): 8 configurations, experts split over TP as the MLP.
    cands = candidates(MIXTRAL, 16, 8, 80 * GIB, MOE_SPACE)
    assert sorted((c.params["tp"], c.params["ep"]) for c in cands) == [
        (t, e) for t in (1, 2) for e in (1, 2, 4, 8)]
    assert all(c.params["expert_tp"] == c.params["tp"] for c in cands)
    # With cp 2 as well, ep must be a multiple of cp dividing dp x cp: 2, 4, 8 for each tp.
    cp = [c for c in candidates(MIXTRAL, 16, 8, 80 * GIB,
                                SearchSpace(**{**MOE_SPACE.__dict__, "cp": (1, 2)}))
          if c.params.get("cp") == 2]
    assert sorted((c.params["tp"], c.params["dp"], c.params["ep"]) for c in cp) == [
        (1, 8, 2), (1, 8, 4), (1, 8, 8), (2, 4, 2), (2, 4, 4), (2, 4, 8)]
    # An explicit ep list is kept to.
    only = candidates(MIXTRAL, 16, 8, 80 * GIB, SearchSpace(**{**MOE_SPACE.__dict__,
                                                                 "ep": (2,)}))
    assert [c.params["ep"] for c in only] == [2, 2]


def test_moe_memory_pruning_uses_the_generator_model() -> None:
    # Full-depth Mixtral 8x7B (46.7B parameters) on 8 GPUs of 120 GiB, tp 1: with ep 1 every
    # GPU holds all 8 experts (weights, fp32 gradients: far over); only ep 8 (one expert
    # per GPU) fits. The verdicts are the generator's analytic memory model's.
    from simcluster.workload.generate.registry import transformer_config
    from simcluster.workload.generate.transformer import memory_fit

    space = SearchSpace(tp=(1,), pp=(1,), micro_batch=(1,), recompute=("full",), zero=(1,),
                        interleave=(1,))
    cands = {c.params["ep"]: c for c in candidates({"preset": "mixtral-8x7b",
                                                   "global_batch": 8}, 8, 8, 120 * GIB, space)}
    assert set(cands) == {1, 2, 4, 8}
    for c in cands.values():
        assert c.infeasible == memory_fit(transformer_config(c.params), 120 * GIB)
    assert [ep for ep, c in cands.items() if c.infeasible is None] == [8]
