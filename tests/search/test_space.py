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
