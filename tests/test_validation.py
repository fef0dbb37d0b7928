"""The collective model against measured nccl-tests curves (needs ../shared/data)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from simcluster import collective_perf
from simcluster.topology import load_cluster
from simcluster.validation import BANDS, SYSTEMS, compare, read_nccl_csv
from tests.conftest import ROOT

# The accuracy the project commits to, per size band (MAPE, %).
TARGETS = {"1 KiB-1 MiB": 25.0, "1 MiB-16 GiB": 10.0, "plateau (>= 1 GiB)": 5.0}


@pytest.fixture(scope="module")
def measured(shared_data):
    return read_nccl_csv(shared_data / "calibration" / "nccl_allreduce_single_node.csv")


@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_all_reduce_busbw_within_targets(measured, system: str) -> None:
    cmp_ = compare(system, load_cluster(ROOT / "topologies" / SYSTEMS[system]), measured[system])
    for band, (lo, hi) in BANDS.items():
        assert cmp_.mape(lo, hi) <= TARGETS[band], (system, band, cmp_.mape(lo, hi))


def test_the_nd_h100_v5_log_runs_nvls_as_its_script_forced(measured) -> None:
    """Azure's benchmark script ran NCCL_ALGO=NVLS: the comparison forces NVLS on that
    system only, and there (NVLS below one round of chunks takes a round's time) every size
    from 64 KiB is within 10 %; the other systems keep the tuner's choice."""
    from simcluster.validation import FORCED_ALGORITHM

    assert FORCED_ALGORITHM == {"azure-nd-h100-v5": "nvls"}
    azure = compare("azure-nd-h100-v5", load_cluster(ROOT / "topologies" / "azure-nd-h100-v5.yaml"),
                    measured["azure-nd-h100-v5"])
    assert set(azure.algorithms) == {"nvls/Simple"}
    assert max(abs(azure.error[azure.sizes >= 65536])) < 0.10
    dgx = compare("dgx-h100-8gpu", load_cluster(ROOT / "topologies" / "dgx-h100.yaml"),
                  measured["dgx-h100-8gpu"])
    assert dgx.algorithms[0] == "ring/LL" and dgx.algorithms[-1] == "nvls/Simple"


def test_the_dgx_log_runs_nccl_2_27s_ll_rows_and_meets_issue_12(measured) -> None:
    """The DGX H100 log's container ships an NCCL of 2025 (>= 2.25): with 2.27's ring LL
    (half the ring, at most 141 GB/s) every size from 64 KiB is within 10 %, and 2 MiB runs
    ring/LL; with 2.18's tables 1 MiB is more than 20 % too slow."""
    from simcluster.validation import LIBRARY

    assert LIBRARY == {"dgx-h100-8gpu": "nccl-2.27"}
    cluster = load_cluster(ROOT / "topologies" / "dgx-h100.yaml")
    dgx = compare("dgx-h100-8gpu", cluster, measured["dgx-h100-8gpu"])
    assert max(abs(dgx.error[dgx.sizes >= 65536])) < 0.10
    assert dict(zip(dgx.sizes.tolist(), dgx.algorithms))[2 * 2**20] == "ring/LL"
    forced = replace(cluster, network=cluster.network.model_copy(update={"library": "nccl"}))
    old = compare("dgx-h100-8gpu", forced, measured["dgx-h100-8gpu"])
    assert dict(zip(old.sizes.tolist(), old.error.tolist()))[2**20] < -0.20


def test_reader_derives_busbw_from_time_when_only_time_is_given(measured) -> None:
    # The DGX log gives busbw 0.00 at 8 B (two decimals) but the time, 13.67 us.
    dgx = {m.size: m for m in measured["dgx-h100-8gpu"]}
    assert dgx[8].time_us == pytest.approx(13.67)
    assert dgx[8].busbw_GBps == pytest.approx(8 / 13.67 / 1e3 * 1.75)
    assert dgx[8589934592].busbw_GBps == pytest.approx(480.16)  # given: kept as published
    assert 1024 not in {m.size for m in measured["azure-nd-a100-v4"] if not m.busbw_GBps > 0}


def test_all_gather_on_8_h100_near_nvidias_stated_370_GBps() -> None:
    # NVIDIA states ~370 GB/s effective NVLink bandwidth for all-gather/reduce-scatter on
    # 8 x H100; the model, fitted on all-reduce only, must land within 10 %.
    rows = collective_perf.run(load_cluster(ROOT / "topologies" / "dgx-h100.yaml"), "all_gather",
                               [4 * 2**30])
    assert rows[0].busbw_GBps == pytest.approx(370.0, rel=0.10)


def test_compare_on_the_dgx_log_reproduces_the_validation_table(shared_data: Path,
                                                               capsys) -> None:
    """`simcluster collectives --compare LOG` on the raw DGX H100 log gives, size by size, the
    errors that docs/validation.md lists (computed there from the CSV of the same log)."""
    from simcluster.cli import main
    from simcluster.topology import load_cluster
    from simcluster.validation import compare, compare_log, read_nccl_csv, read_nccl_log

    cal = shared_data / "calibration"
    log = read_nccl_log(cal / "dgx-h100-nccl-allreduce.md")
    assert log.ranks == 8 and log.points[0].size == 8 and log.points[-1].size == 2**34
    cluster = load_cluster(ROOT / "topologies" / "dgx-h100.yaml")
    from_log = compare_log(log, cluster, "all_reduce", 8, library="nccl-2.27")
    from_csv = compare("dgx-h100-8gpu", cluster,
                       read_nccl_csv(cal / "nccl_allreduce_single_node.csv")["dgx-h100-8gpu"])
    common = np.intersect1d(from_log.sizes, from_csv.sizes)
    assert len(common) >= 30
    e_log = dict(zip(from_log.sizes.tolist(), from_log.error.tolist()))
    e_csv = dict(zip(from_csv.sizes.tolist(), from_csv.error.tolist()))
    assert all(e_log[s] == pytest.approx(e_csv[s], abs=1e-9) for s in common.tolist())
    assert from_log.mape(2**20, 2**34) == pytest.approx(from_csv.mape(2**20, 2**34))
    with pytest.raises(SystemExit) as exit_:
        main(["collectives", "-t", str(ROOT / "topologies" / "dgx-h100.yaml"), "--library",
              "nccl-2.27", "--compare", str(cal / "dgx-h100-nccl-allreduce.md")])
    assert exit_.value.code in (0, None)
    out = capsys.readouterr().out
    assert f"from 1 MiB: MAPE {from_csv.mape(2**20, 2**34):.1f}%" in out.replace("\n", " ")


def test_a_file_without_nccl_rows_is_a_clear_error(tmp_path: Path) -> None:
    from simcluster.errors import SimclusterError
    from simcluster.validation import read_nccl_log

    bad = tmp_path / "not-a-log.txt"
    bad.write_text("# nThread 1 nGpus 8\nhello\n")
    with pytest.raises(SimclusterError, match="no nccl-tests data row"):
        read_nccl_log(bad)


@pytest.mark.parametrize("topology,ranks,scale_up_GBps", [
    ("mi300x-8gpu.yaml", 8, 7 * 64.0),      # 7 Infinity Fabric links of 64 GB/s per GPU
    ("gaudi3-8.yaml", 8, 21 * 25.0),        # 21 x 200 GbE RoCE ports per card
    ("gb200-nvl72-x2.yaml", 72, 900.0),     # NVLink 5 per GPU, one rack
])
def test_new_platforms_give_plausible_all_reduce_bandwidth(topology: str, ranks: int,
                                                           scale_up_GBps: float) -> None:
    """Datasheet-only platforms: the 1 GiB all-reduce busbw lies between half of what a GPU's
    scale-up links carry and that bound itself (NVLS may reach it: the switch reduces), and
    bandwidth grows with size as nccl-tests curves do."""
    cluster = load_cluster(ROOT / "topologies" / topology)
    rows = collective_perf.run(cluster, "all_reduce", [2**20, 2**25, 2**30], ranks=ranks)
    bus = [r.busbw_GBps for r in rows]
    assert bus[0] < bus[1] < bus[2]
    limit = scale_up_GBps * (1.25 if rows[-1].algorithm.startswith("nvls") else 1.0)
    assert 0.5 * scale_up_GBps < bus[2] <= limit, (topology, bus, rows[-1].algorithm)


def test_gb200_nvl72_against_coreweave() -> None:
    """The published GB200 logs (bench/data/published/nccl) run through --compare. The NVL72
    NVLS efficiency was fitted on the single-rack plateau (in-sample: within 1.5 %); two racks
    run NVLS-tree and are out of sample: their plateau is a few percent fast, and every size
    is too fast on average (the logs' size-independent cost, which the model lacks).
    docs/validation.md has the numbers."""
    from simcluster.validation import compare_log, read_nccl_log

    logs = ROOT / "bench" / "data" / "published" / "nccl"
    cluster = load_cluster(ROOT / "topologies" / "gb200-nvl72-x2.yaml")
    one_log = read_nccl_log(logs / "coreweave_gb200_nvl72_1rack_72gpu_allreduce.txt")
    two_log = read_nccl_log(logs / "coreweave_gb200_nvl72_2racks_144gpu_allreduce.txt")
    assert (one_log.ranks, two_log.ranks) == (72, 144)  # from the last "#  Rank N" line
    one = compare_log(one_log, cluster, "all_reduce", 72)
    two = compare_log(two_log, cluster, "all_reduce", 144)
    assert len(one.sizes) == 5 and len(two.sizes) == 6
    assert set(one.algorithms) == {"nvls/Simple"} and set(two.algorithms) == {"nvls-tree/Simple"}
    # Fitted to a zero mean log error over 4 and 8 GiB; the two sizes stay within 1.5 %.
    assert one.mape(lo=4 * 2**30) < 1.5 and abs(one.mean_signed(lo=4 * 2**30)) < 0.1
    assert 0 < two.mean_signed(lo=4 * 2**30) < 15 and two.mean_signed() > 0


def test_h100_sharp_collnet_chain_against_coreweave() -> None:
    """CoreWeave's 64-H100 SHARP log ran NCCL_ALGO=COLLNETCHAIN: forced, the model's CollNet
    chain (NCCL's constants, no parameter fitted on this log) is within 5 % at every size;
    left to choose with CollNet off (network.collnet, NCCL's default) it runs NCCL 2.18.5's
    trees and rings (tree/Simple to 2 GiB, rings from 4 GiB), never CollNet."""
    from simcluster.validation import compare_log, read_nccl_log

    log = read_nccl_log(ROOT / "bench" / "data" / "published" / "nccl"
                        / "coreweave_h100_64gpu_sharp_allreduce.txt")
    cluster = load_cluster(ROOT / "topologies" / "dgx-h100-superpod.yaml")
    chain = compare_log(log, cluster, "all_reduce", 64, algorithm="collnet-chain")
    assert set(chain.algorithms) == {"collnet-chain/Simple"}
    assert max(abs(chain.error)) < 0.05
    auto = compare_log(log, cluster, "all_reduce", 64)
    assert [a.split("/")[0] for a in auto.algorithms] == ["tree"] * 3 + ["ring"] * 2
