"""The accelerator catalog: figures and sources, names as drivers print them, memory-size
disambiguation, the did-you-mean, one-server clusters of every part, and the docs table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simcluster.errors import TopologyError
from simcluster.names import loose
from simcluster.topology import catalog
from simcluster.topology.accelerator import GIB, SCALE_UP_KINDS
from simcluster.topology.catalog_doc import markdown
from simcluster.topology.identification import resolve, suggestions, unknown_message
from simcluster.topology.recorded import recorded_cluster
from simcluster.workload.kineto import import_kineto
from tests.conftest import ROOT
from tests.workload.kinetotrace import KTrace

# The parts of the catalog before the additions: their figures must not move.
ORIGINAL = {
    "V100-SXM2-32GB": ({"fp64": 7.8, "fp32": 15.7, "fp16": 125.0}, 32, 900, 150, 3),
    "V100-SXM2-16GB": ({"fp64": 7.8, "fp32": 15.7, "fp16": 125.0}, 16, 900, 150, 3),
    "V100-SXM3-32GB": ({"fp64": 8.2, "fp32": 16.5, "fp16": 131.25}, 32, 900, 150, 3),
    "A100-SXM4-80GB": ({"fp64": 19.5, "fp32": 19.5, "tf32": 156.0, "fp16": 312.0,
                        "bf16": 312.0, "int8": 624.0}, 80, 2039, 300, 4),
    "A100-SXM4-40GB": ({"fp64": 19.5, "fp32": 19.5, "tf32": 156.0, "fp16": 312.0,
                        "bf16": 312.0, "int8": 624.0}, 40, 1555, 300, 4),
    "H100-SXM5-80GB": ({"fp64": 67.0, "fp32": 67.0, "tf32": 494.5, "fp16": 989.5,
                        "bf16": 989.5, "fp8": 1979.0, "int8": 1979.0}, 80, 3350, 450, 5),
    "H200": ({"fp64": 67.0, "fp32": 67.0, "tf32": 494.5, "fp16": 989.5, "bf16": 989.5,
              "fp8": 1979.0, "int8": 1979.0}, 141, 4800, 450, 5),
    "MI250-GCD": ({"fp64": 45.25, "fp32": 45.25, "fp16": 181.05, "bf16": 181.05,
                   "int8": 181.05}, 64, 1638.4, 200, 4),
}


def test_the_original_parts_keep_their_figures() -> None:
    for model, (peaks, hbm, bw, link, gen) in ORIGINAL.items():
        s = catalog.ACCELERATORS[model]
        assert (s.peak_tflops, s.hbm_GiB, s.hbm_GBps, s.nvlink_GBps, s.pcie_gen,
                s.launch_overhead_us) == (peaks, hbm, bw, link, gen, 2.0), model
    assert catalog.ACCELERATORS["H100-SXM5-80GB"].nvls and catalog.ACCELERATORS["H200"].nvls


def test_every_part_has_a_source_and_positive_figures() -> None:
    assert len(catalog.ACCELERATORS) >= 26
    for s in catalog.ACCELERATORS.values():
        assert s.source and s.vendor in ("NVIDIA", "AMD", "Intel", "Google"), s.model
        assert s.hbm_GiB > 0 and s.hbm_GBps > 0 and s.nvlink_GBps >= 0, s.model
        assert s.pcie_gen in (3, 4, 5) and s.family and s.form, s.model
        assert s.scale_up_kind in SCALE_UP_KINDS, s.model
        assert s.peak_tflops and all(v > 0 for v in s.peak_tflops.values()), s.model
        for dtype in ("fp32", "tf32", "fp16", "bf16", "fp8", "fp4", None):
            assert s.peak_flops_per_us(dtype) > 0, (s.model, dtype)


def test_every_name_is_one_part() -> None:
    seen: dict[str, str] = {}
    for s in catalog.ACCELERATORS.values():
        for name in (s.model, *s.aliases):
            assert seen.setdefault(loose(name), s.model) == s.model, name


def test_dtype_stand_ins() -> None:
    b200, h100 = catalog.ACCELERATORS["B200-SXM-180GB"], catalog.ACCELERATORS["H100-SXM5-80GB"]
    assert b200.peak_flops_per_us("fp4") == 9000e6
    assert h100.peak_flops_per_us("fp4") == 1979e6  # no FP4: the FP8 peak
    tpu = catalog.ACCELERATORS["TPU-v5p"]
    assert tpu.peak_flops_per_us("fp32") == tpu.peak_flops_per_us("tf32") == 459e6


def _identified(name: str, memory: int | None = None, units: int | None = None) -> str | None:
    found = catalog.identify(name, memory, units)
    return None if found is None else found.spec.model


@pytest.mark.parametrize("name, memory, units, model", [
    # NVIDIA datacenter: PyTorch deviceProperties / nvidia-smi names.
    ("NVIDIA H100 80GB HBM3", 85_520_809_984, 132, "H100-SXM5-80GB"),
    ("NVIDIA H100 NVL", 99_857_989_632, 132, "H100-NVL-94GB"),
    ("NVIDIA H100 PCIe", 85_520_809_984, 114, "H100-PCIe-80GB"),
    ("NVIDIA H800", 85_520_809_984, 132, "H800-SXM5-80GB"),
    ("NVIDIA H20", 102_005_473_280, 78, "H20-96GB"),
    ("NVIDIA H200", 150_110_011_392, 132, "H200"),
    ("NVIDIA B200", 191_537_954_816, 148, "B200-SXM-180GB"),
    ("NVIDIA GB200", 199_990_000_000, 152, "GB200-186GB"),
    ("NVIDIA A100-SXM4-40GB", 42_297_524_224, 108, "A100-SXM4-40GB"),
    ("NVIDIA A100 80GB PCIe", 85_197_848_576, 108, "A100-PCIe-80GB"),
    ("NVIDIA A100-PCIE-40GB", 42_505_273_344, 108, "A100-PCIe-40GB"),
    ("NVIDIA L40S", 47_697_362_944, 142, "L40S-48GB"),
    ("Tesla V100-SXM2-16GB", 16_945_512_448, 80, "V100-SXM2-16GB"),
    # AMD Instinct: rocm-smi and PyTorch-on-ROCm names.
    ("AMD Instinct MI300X", 205_822_885_888, 304, "MI300X"),
    ("AMD Instinct MI325X", 274_877_906_944, 304, "MI325X"),
    ("AMD Instinct MI355X", 309_237_645_312, 256, "MI355X"),
    ("AMD Instinct MI210", 68_702_699_520, 104, "MI210"),
    ("AMD Instinct MI250X/MI250", 68_702_699_520, 110, "MI250X-GCD"),
    ("AMD Instinct MI250X/MI250", 68_702_699_520, 104, "MI250-GCD"),
    ("AMD Radeon Graphics", 68_702_699_520, 104, "MI250-GCD"),
    # Intel Gaudi: hl-smi and torch.hpu names.
    ("Intel Gaudi 2", None, None, "Gaudi2"),
    ("HL-225", None, None, "Gaudi2"),
    ("GAUDI3", None, None, "Gaudi3"),
    # Google TPU: JAX device kinds and Cloud names.
    ("TPU v5p", None, None, "TPU-v5p"),
    ("TPU v6 lite", None, None, "TPU-v6e"),
])
def test_identify_by_naming_family(name: str, memory: int | None, units: int | None,
                                   model: str) -> None:
    assert _identified(name, memory, units) == model


@pytest.mark.parametrize("name", ["NVIDIA GeForce RTX 2080 Ti", "Quadro GP100",
                                  "NVIDIA GH200 480GB", "TPU v5 lite", "Tesla V100-PCIE-32GB"])
def test_parts_outside_the_catalog_are_not_guessed(name: str) -> None:
    assert catalog.identify(name, 11_554_717_696, 68) is None
    with pytest.raises(TopologyError) as err:
        resolve(name)
    msg = str(err.value)
    assert f"unknown accelerator model {name!r}" in msg
    assert "--device-file FILE --device NAME" in msg and "accelerator_models:" in msg


@pytest.mark.parametrize("name", ["", "   "])
def test_an_empty_name_matches_nothing_and_says_so(name: str) -> None:
    assert catalog.identify(name, 85_899_345_920, 108) is None
    assert catalog.lookup(name) is None
    msg = unknown_message(name)
    assert "has no name" in msg and "--device-file" in msg


def test_memory_size_tells_variants_apart() -> None:
    # A 94 GiB "NVIDIA H100" is the NVL part, not the 80 GB SXM5 the alias names.
    assert _identified("NVIDIA H100", 99_857_989_632) == "H100-NVL-94GB"
    assert _identified("NVIDIA H100", 85_520_809_984) == "H100-SXM5-80GB"
    assert _identified("NVIDIA H100") == "H100-SXM5-80GB"  # no size: the SXM part
    # The A100's board name with the 40 GB memory: the SXM4 40 GB part (PCIe only if named).
    found = catalog.identify("NVIDIA A100-PG509-200", 42_297_524_224)
    assert found is not None and found.spec.model == "A100-SXM4-40GB" and not found.exact
    assert found.how == "'NVIDIA A100-PG509-200': A100 family, 39.4 GiB"
    # A size in the name works the same; a form in the name limits the variants.
    assert catalog.lookup("A100 40GB").model == "A100-SXM4-40GB"
    assert catalog.lookup("a100 40gb pcie").model == "A100-PCIe-40GB"
    assert catalog.lookup("nvidia-h100-nvl").model == "H100-NVL-94GB"
    assert catalog.lookup("H100-PCIe-96GB") is None  # no H100 PCIe of 96 GB


def test_did_you_mean_ranks_by_the_whole_name(tmp_path: Path) -> None:
    assert suggestions("H100-PCIe-96GB")[0] == "H100-PCIe-80GB"
    assert "V100-SXM2-16GB" not in suggestions("H100-PCIe-96GB")
    msg = unknown_message("H100-PCIe-96GB")
    assert "did you mean 'H100-PCIe-80GB'?" in msg
    # The same through a topology file and through --device.
    topo = tmp_path / "t.yaml"
    topo.write_text("name: t\nnodes:\n  - {accelerator: H100-PCIe-96GB, fabric: pcie}\n")
    from simcluster.topology import load_cluster

    with pytest.raises(TopologyError, match="did you mean 'H100-PCIe-80GB'"):
        load_cluster(topo)
    with pytest.raises(TopologyError, match="--device 'H100-PCIe-96GB': .*did you mean "
                                            "'H100-PCIe-80GB'"):
        recorded = load_cluster(ROOT / "topologies" / "h100-2node.yaml")
        from simcluster.topology.transform import with_device

        with_device(recorded, "H100-PCIe-96GB")


def test_a_one_server_cluster_of_every_part() -> None:
    fabrics = {}
    for model in catalog.ACCELERATORS:
        c = recorded_cluster(model, 8)
        assert len(c.accelerators) == 8 and c.specs["node0/gpu0"].model == model
        kinds = {k for k in c.link_kind}
        switch = "node0/nvswitch" in c.graph
        fabrics[model] = "nvswitch" if switch else "mesh" if "nvlink" in kinds else "pcie"
    assert fabrics["B200-SXM-180GB"] == fabrics["GB200-186GB"] == "nvswitch"
    assert fabrics["MI300X"] == fabrics["Gaudi3"] == fabrics["TPU-v6e"] == "mesh"
    assert fabrics["H100-PCIe-80GB"] == fabrics["L40S-48GB"] == "pcie"
    assert fabrics["V100-SXM2-32GB"] == fabrics["MI250-GCD"] == "mesh"  # as before
    assert fabrics["A100-SXM4-80GB"] == "nvswitch"
    # A full mesh splits the part's links over its 7 peers: 64 GB/s per MI300X pair (one
    # Infinity Fabric link), 75 per Gaudi 3 pair (3 x 200 GbE).
    mi300x, gaudi3 = recorded_cluster("MI300X", 8), recorded_cluster("Gaudi3", 8)
    for c, per_pair in ((mi300x, 64.0), (gaudi3, 75.0)):
        link = c.graph.edges["node0/gpu0", "node0/gpu5"]["id"]
        assert c.bandwidth_Bpus[link] / 1e3 == pytest.approx(per_pair)
    assert "RoCE" in gaudi3.description


def test_a_recorded_gpu_outside_the_catalog_is_left_for_the_user(tmp_path: Path) -> None:
    """Small hand-made traces, one per naming family, through the Kineto importer."""
    recorded = {}
    for name, memory in (("NVIDIA B200", 191_537_954_816), ("NVIDIA H100", 99_857_989_632),
                         ("AMD Instinct MI300X", 205_822_885_888), ("Intel Gaudi 2", None),
                         ("NVIDIA GeForce RTX 2080 Ti", 11_554_717_696), ("", None)):
        t = KTrace(rank=None, world=None, device=None)
        t.step(1, 1000, 100)
        t.launch(1010, 5, 1020, 50)
        doc = t.doc()
        doc["deviceProperties"] = [{"id": 0, "name": name, "totalGlobalMem": memory}]
        path = tmp_path / f"{len(recorded)}.json"
        path.write_text(json.dumps(doc))
        recorded[name] = import_kineto(path).meta.recorded_device
    assert recorded == {"NVIDIA B200": "B200-SXM-180GB", "NVIDIA H100": "H100-NVL-94GB",
                        "AMD Instinct MI300X": "MI300X", "Intel Gaudi 2": "Gaudi2",
                        "NVIDIA GeForce RTX 2080 Ti": None, "": None}


def test_the_docs_table_is_the_catalog() -> None:
    text = (ROOT / "docs" / "compute.md").read_text(encoding="utf-8")
    assert markdown() in text, "regenerate: python -m simcluster.topology.catalog_doc"


def test_identify_keeps_the_importers_signature() -> None:
    found = catalog.identify("NVIDIA A100-SXM4-80GB", 85_899_345_920, 108)
    assert isinstance(found, catalog.Identified)
    assert (found.spec.model, found.how) == ("A100-SXM4-80GB",
                                             "catalog name 'NVIDIA A100-SXM4-80GB'")
    assert catalog.identify("Tesla V100-DGXS-32GB").how == (
        "'Tesla V100-DGXS-32GB' is V100-SXM2-32GB")
    assert catalog.identify("A100").spec.hbm_bytes == 80 * GIB
