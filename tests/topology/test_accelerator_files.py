"""User-defined accelerators in a separate YAML file: used by a topology
(``accelerator_files:``) and by ``replay --device-file``; validated with file/line messages;
and retargeting to catalog parts by the compute model's ratio."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import simcluster as sc
from simcluster.errors import TopologyError
from simcluster.filekinds import identify as file_kind
from simcluster.sim.compute import ComputeModel
from simcluster.topology import load_accelerator_file, load_cluster, resolve_device
from simcluster.topology.build import build
from simcluster.topology.catalog import ACCELERATORS
from simcluster.topology.schema import TopologySpec
from simcluster.workload import write_workload
from tests.cli.test_cli import _run
from tests.conftest import ROOT, workload
from tests.workload.kinetotrace import KTrace

GPUS = """\
description: lab GPUs
accelerator_models:
  RTX2080Ti:
    peak_tflops: {fp32: 13.4, fp16: 53.8}
    hbm_GiB: 11
    hbm_GBps: 616
    pcie_gen: 3
    vendor: NVIDIA
    aliases: ["NVIDIA GeForce RTX 2080 Ti"]
"""
TOPO = """\
name: lab
accelerator_files: [gpus.yaml]
nodes:
  - {accelerator: NVIDIA GeForce RTX 2080 Ti, accelerators: 4, fabric: pcie}
"""


def _files(tmp_path: Path, gpus: str = GPUS, topo: str = TOPO) -> tuple[Path, Path]:
    (tmp_path / "gpus.yaml").write_text(gpus)
    (tmp_path / "t.yaml").write_text(topo)
    return tmp_path / "gpus.yaml", tmp_path / "t.yaml"


def test_a_topology_uses_models_of_an_accelerator_file(tmp_path: Path) -> None:
    gpus, topo = _files(tmp_path)
    c = load_cluster(topo)
    spec = c.specs["node0/gpu3"]
    assert (spec.model, spec.hbm_GiB, spec.vendor, spec.pcie_gen) == ("RTX2080Ti", 11, "NVIDIA", 3)
    assert spec.source == f"defined in {gpus}"
    assert load_accelerator_file(gpus)["RTX2080Ti"] == spec
    assert file_kind(gpus) == "accelerators"
    # build() reads no files: without the models it says who reads them.
    with pytest.raises(TopologyError, match="accelerator files are read by load_cluster"):
        build(TopologySpec.model_validate({"name": "x", "accelerator_files": ["gpus.yaml"],
                                           "nodes": [{"accelerator": "A100"}]}))


@pytest.mark.parametrize("gpus, topo, message", [
    (GPUS.replace("hbm_GiB: 11", "hbm_GiB: 0"), TOPO,
     "t.yaml:2: accelerator_files[0]: {dir}/gpus.yaml:5: accelerator_models.RTX2080Ti.hbm_GiB: "
     "input should be greater than 0; use a positive number."),
    (GPUS.replace("fp16: 53.8", "FP16: 53.8"), TOPO,
     "gpus.yaml:4: accelerator_models.RTX2080Ti.peak_tflops: unknown dtype 'FP16'; use fp64, "
     "fp32"),
    (GPUS, TOPO.replace("gpus.yaml", "nope.yaml"),
     "t.yaml:2: accelerator_files[0]: {dir}/nope.yaml: file not found; check the path."),
    (GPUS, TOPO + "accelerator_models:\n  RTX2080Ti: {peak_tflops: {bf16: 1}, hbm_GiB: 1, "
     "hbm_GBps: 1}\n", "accelerator model 'RTX2080Ti' is defined in {dir}/gpus.yaml and in "
     "this topology's accelerator_models; keep one definition."),
    (GPUS.replace("accelerator_models:", "accelerator_models: {}\nx:"), TOPO,
     "gpus.yaml:3: x: unknown key; allowed keys here: accelerator_models, description."),
])
def test_accelerator_file_errors_name_the_file_and_line(tmp_path: Path, gpus: str, topo: str,
                                                        message: str) -> None:
    _files(tmp_path, gpus, topo)
    with pytest.raises(TopologyError) as err:
        load_cluster(tmp_path / "t.yaml")
    assert message.format(dir=tmp_path) in str(err.value)


def test_resolve_device(tmp_path: Path) -> None:
    gpus, _ = _files(tmp_path)
    assert resolve_device(None) is None
    assert resolve_device("H100").model == "H100-SXM5-80GB"
    assert resolve_device(None, [gpus]).model == "RTX2080Ti"  # the file's only model
    assert resolve_device(str(gpus)).model == "RTX2080Ti"  # --device FILE
    assert resolve_device("nvidia geforce rtx 2080 ti", [gpus]).model == "RTX2080Ti"
    with pytest.raises(TopologyError, match="did you mean 'RTX2080Ti'"):
        resolve_device("RTX2080", [gpus])
    two = tmp_path / "two.yaml"
    two.write_text(GPUS + "  Other: {peak_tflops: {bf16: 1}, hbm_GiB: 1, hbm_GBps: 1}\n")
    with pytest.raises(TopologyError, match="defines RTX2080Ti, Other; name the one"):
        resolve_device(None, [two])
    with pytest.raises(TopologyError, match="give --device-file FILE --device NAME"):
        resolve_device(str(two))
    with pytest.raises(TopologyError, match="file not found"):
        resolve_device(str(tmp_path / "missing.yaml"))
    with pytest.raises(TopologyError, match="is a topology file, not an accelerator file"):
        resolve_device(None, [ROOT / "topologies" / "h100-2node.yaml"])


def _unknown_gpu_trace(tmp_path: Path) -> Path:
    t = KTrace(rank=None, world=None, device=None)
    t.step(1, 1000, 100)
    t.launch(1010, 5, 1020, 50)
    doc = t.doc()
    doc["deviceProperties"] = [{"id": 0, "name": "NVIDIA GeForce RTX 2080 Ti",
                                "totalGlobalMem": 11_554_717_696, "numSms": 68}]
    path = tmp_path / "rtx.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("name, memory, units, model", [
    ("NVIDIA H100 NVL", 99_857_989_632, 132, "H100-NVL-94GB"),  # NVIDIA datacenter, by memory
    ("NVIDIA B200", 191_525_027_840, 148, "B200-SXM-180GB"),
    ("AMD Instinct MI300X", 205_822_885_888, 304, "MI300X"),  # AMD Instinct (ROCm name)
    ("AMD Instinct MI210", 68_702_699_520, 104, "MI210"),
])
def test_a_hand_made_trace_of_each_naming_family_is_identified(
        tmp_path: Path, name: str, memory: int, units: int, model: str) -> None:
    t = KTrace(rank=None, world=None, device=None)
    t.step(1, 1000, 100)
    t.launch(1010, 5, 1020, 50)
    doc = t.doc()
    doc["deviceProperties"] = [{"id": 0, "name": name, "totalGlobalMem": memory,
                                "numSms": units}]
    path = tmp_path / "t.json"
    path.write_text(json.dumps(doc))
    assert sc.load_workload(path).meta.recorded_device == model


def test_a_trace_with_an_empty_gpu_name_says_so_and_replays_with_a_spec(
        capsys, tmp_path: Path) -> None:
    gpus, _ = _files(tmp_path)
    t = KTrace(rank=None, world=None, device="")
    t.step(1, 1000, 100)
    t.launch(1010, 5, 1020, 50)
    path = t.write(tmp_path / "empty.json")
    code, _, err = _run(capsys, "replay", str(path))
    assert code == 2 and "--device-file" in err
    code, text, _ = _run(capsys, "replay", str(path), "--device-file", str(gpus),
                         "--device", "RTX2080Ti", "-q")
    assert code == 0 and float(text) > 0


def test_a_trace_from_an_unknown_gpu_replays_with_its_spec(capsys, tmp_path: Path) -> None:
    gpus, _ = _files(tmp_path)
    trace = _unknown_gpu_trace(tmp_path)
    code, _, err = _run(capsys, "replay", str(trace))
    # The error names the GPU the trace gave and how to supply it; it never says the trace
    # names no GPU (which the import's own warning would contradict).
    assert code == 2 and "'NVIDIA GeForce RTX 2080 Ti'" in err and "--device-file" in err
    assert "does not say which accelerator" not in err
    code, text, _ = _run(capsys, "replay", str(trace), "--device-file", str(gpus),
                         "--device", "RTX2080Ti")
    assert code == 0 and "no --topology: replaying on recorded-RTX2080Ti-x1" in text
    code, q1, _ = _run(capsys, "replay", str(trace), "--device-file", str(gpus), "-q")
    code2, q2, _ = _run(capsys, "replay", str(trace), "--device", str(gpus), "-q")
    assert code == code2 == 0 and q1 == q2 and float(q1) > 0
    code, _, err = _run(capsys, "replay", str(trace), "--device-file", str(gpus),
                        "--device", "RTX2080")
    assert code == 2 and "did you mean 'RTX2080Ti'" in err


def test_device_file_with_a_topology_and_from_python(capsys, tmp_path: Path) -> None:
    gpus, _ = _files(tmp_path)
    wl_path = tmp_path / "w.parquet"
    write_workload(workload([{"rank": 0, "kind": "compute", "flops": 1e12,
                              "bytes_accessed": 10**9, "dtype": "fp16"}]), wl_path)
    topo = str(ROOT / "topologies" / "h100-2node.yaml")
    code, h100, _ = _run(capsys, "replay", str(wl_path), "-t", topo, "-q")
    code2, rtx, _ = _run(capsys, "replay", str(wl_path), "-t", topo, "--device-file",
                         str(gpus), "--device", "RTX2080Ti", "-q")
    assert code == code2 == 0 and float(rtx) > 5 * float(h100)
    result = sc.replay(wl_path, device="RTX2080Ti", device_files=[gpus])
    assert result.cluster.name == "recorded-RTX2080Ti-x1"
    assert result.step_time_us == pytest.approx(float(rtx), rel=1e-6)


@pytest.mark.parametrize("recorded, target", [("MI300X", "B200-SXM-180GB"),
                                              ("B200-SXM-180GB", "H100-SXM5-80GB")])
def test_retargeting_a_recorded_kernel_by_the_model_ratio(recorded: str, target: str) -> None:
    flops, nbytes = 4e12, 2 * 10**9
    wl = workload([{"rank": 0, "kind": "compute", "duration_us": 5000.0, "flops": flops,
                    "bytes_accessed": nbytes, "dtype": "bf16"}])
    wl = dataclasses.replace(wl, meta=dataclasses.replace(wl.meta, recorded_device=recorded))
    model = ComputeModel()

    def predicted(name: str) -> float:
        return float(model.roofline_us(np.array([flops]), np.array([nbytes]), "bf16",
                                       ACCELERATORS[name])[0])

    result = sc.Scenario(wl, whatif=sc.WhatIf(device=target)).run()
    assert result.step_time_us == pytest.approx(5000.0 * predicted(target) / predicted(recorded))
    assert sc.Scenario(wl).run().step_time_us == pytest.approx(5000.0)
