"""NVLS chunk sizes follow NCCL 2.18.5 (src/enqueue.cc); smaller chunks pay their fixed cost
more often, and the pipeline fills with two chunks per concurrent op."""

from __future__ import annotations

import pytest

from simcluster.sim import protocols as proto

MiB = 1 << 20


@pytest.mark.parametrize(("size", "chunk"), [
    (4 * MiB, 16384),            # < 2 x 16 channels x 8 heads x 32 KiB = 8 MiB
    (8 * MiB - 1, 16384),
    (8 * MiB, 32768),            # < 8 x 128 x 64 KiB = 64 MiB
    (64 * MiB - 1, 32768),
    (64 * MiB, 65536),           # < 64 x 128 x 128 KiB = 1 GiB
    (1024 * MiB - 1, 65536),
    (1024 * MiB, 131072),
    (16 * 1024 * MiB, 131072),
])
def test_nvls_chunk_of_an_8_gpu_all_reduce(size: int, chunk: int) -> None:
    assert proto.nvls_chunk_bytes(size, heads=8) == chunk


def test_more_heads_keep_smaller_chunks_to_larger_sizes() -> None:
    # 72 heads: 2 x 16 x 72 x 32 KiB = 72 MiB.
    assert proto.nvls_chunk_bytes(64 * MiB, heads=72) == 16384
    assert proto.nvls_chunk_bytes(72 * MiB, heads=72) == 32768


def test_at_the_largest_chunk_only_the_fill_remains() -> None:
    # 1 GiB, 8 heads: 128 KiB chunks, no stretch; fill 2 (131072 x 128 u - c + c) = 2**25 u.
    stretch, fill = proto.nvls_pipeline(2**30, 8, 3.0, 1e-6)
    assert stretch == 1.0 and fill == pytest.approx(2 * 131072 * 128 * 1e-6)


def test_smaller_chunks_pay_their_overhead_more_often() -> None:
    # 4 MiB, 8 heads: 16 KiB chunks; c = 2 us, u = 1e-5 us/B, n = 128:
    # stretch 1 + 2 (1/16384 - 1/131072) / (128 x 1e-5) = 1 + 0.0833... ;
    # fill 2 (16384 (128e-5 - 2/131072) + 2).
    stretch, fill = proto.nvls_pipeline(4 * MiB, 8, 2.0, 1e-5)
    assert stretch == pytest.approx(1 + 2 * (7 / 131072) / 128e-5)
    assert fill == pytest.approx(2 * (16384 * (128e-5 - 2 / 131072) + 2))
    assert proto.nvls_pipeline(4 * MiB, 8, 0.0, 1e-5)[0] == 1.0


def test_a_call_smaller_than_one_round_takes_a_rounds_time() -> None:
    # 8 heads x 16 channels x 16 KiB chunks: a round is 2 MiB. NCCL gives chunk j to channel
    # j // 8, so 64 KiB keeps 4 ops busy with a whole chunk each and the rest idle: the time
    # S u stretch + fill is that of exactly one round at every size up to 2 MiB.
    u, c = 1e-5, 2.0
    assert proto.nvls_round_bytes(MiB, 8) == 2 * MiB
    assert proto.nvls_round_bytes(16 * MiB, 8) == 128 * 32768  # 32 KiB chunks from 8 MiB
    stretch, fill = proto.nvls_pipeline(2 * MiB, 8, c, u)
    one_round = 2 * MiB * u * stretch + fill
    for size in (1024, 65536, MiB):
        s, f = proto.nvls_pipeline(size, 8, c, u)
        assert s == stretch and size * u * s + f == pytest.approx(one_round)
        assert f == pytest.approx(fill + (2 * MiB - size) * u * stretch)
    # From one round up nothing is added: 4 MiB is two rounds of the same chunks.
    s, f = proto.nvls_pipeline(4 * MiB, 8, c, u)
    assert f == pytest.approx(fill) and 4 * MiB * u * s + f > one_round
