"""``simcluster calibrate`` as a user meets it: the calibrated topology (loadable, the same
bytes for the same input, predicting what the report says), JSON, and bad input ending with
exit 2, a message naming the file and line, and no output file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from simcluster import collective_perf
from simcluster.topology import load_cluster
from tests.calibrate.synthetic import log_text, simulated_log, truth_topology
from tests.cli.test_cli import _run
from tests.conftest import ROOT

DGX = ROOT / "topologies" / "dgx-h100.yaml"
TWO = ROOT / "topologies" / "h100-2node.yaml"
SIZES = [2**k for k in range(10, 35, 2)]  # 1 KiB to 16 GiB
TRUTH = {"nvls_efficiency": 0.70, "nvls_base_latency_us": 30.0, "host_launch_us": 25.0}


@pytest.fixture(scope="module")
def dgx_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("dgx")
    return simulated_log(truth_topology(DGX, TRUTH, tmp / "truth.yaml"), 8, 8, SIZES,
                         tmp / "all_reduce.log")


def test_the_calibrated_topology_loads_and_predicts_what_was_reported(
        dgx_log: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out" / "calibrated.yaml"
    code, stdout, _ = _run(capsys, "calibrate", str(dgx_log), "-t", str(DGX), "-o", str(out),
                           "--json")
    assert code == 0
    report = json.loads(stdout)
    assert report["out"] == str(out)
    fitted = {p["name"]: p["after"] for p in report["parameters"] if p["status"] == "fitted"}
    assert fitted == pytest.approx(TRUTH, rel=2e-3)
    cluster = load_cluster(out)
    assert cluster.network.nvls_efficiency == fitted["nvls_efficiency"]
    assert cluster.network.host_launch_us == fitted["host_launch_us"]
    # What the calibrated topology simulates is what the report predicted after the fit.
    rows = report["logs"][0]["rows"]
    sim = collective_perf.run(cluster, "all_reduce", [r["size"] for r in rows], ranks=8)
    assert [r.busbw_GBps for r in sim] == pytest.approx(
        [r["after_busbw_GBps"] for r in rows], rel=1e-9)
    assert [r.algorithm for r in sim] == [r["algorithm_after"] for r in rows]
    text = out.read_text()
    assert text.startswith("# Calibrated by `simcluster calibrate` on all_reduce.log "
                           "(all_reduce, 8 ranks).")
    assert "# One NVIDIA DGX H100" in text  # the input's own comments follow
    # The other protocols' overheads are written too: a partial map would drop them.
    assert cluster.network.protocol_overhead_us["Simple"] == 86.3


def test_the_same_input_gives_the_same_bytes(dgx_log: Path, tmp_path: Path, capsys) -> None:
    texts = []
    for k in range(2):
        out = tmp_path / f"c{k}.yaml"
        assert _run(capsys, "calibrate", str(dgx_log), "-t", str(DGX), "-o", str(out))[0] == 0
        texts.append(out.read_bytes())
    assert texts[0] == texts[1]


def test_the_tables(dgx_log: Path, capsys) -> None:
    code, out, _ = _run(capsys, "calibrate", str(dgx_log), "-t", str(DGX),
                        "--fit-sizes", "1K:256M")
    assert code == 0
    assert "nvls_efficiency" in out and "fits as well" in out
    assert "not identifiable: identified by logs across servers" in out
    assert "held out" in out and ">= 1 GiB" in out


def test_accelerator_files_still_load_from_another_folder(tmp_path: Path, capsys) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "gpus.yaml").write_text(
        "accelerator_models:\n  Lab:\n    peak_tflops: {bf16: 100}\n    hbm_GiB: 80\n"
        "    hbm_GBps: 2000\n")
    topo = src / "t.yaml"
    topo.write_text("name: lab\naccelerator_files: [gpus.yaml]\nnodes:\n  - {accelerator: Lab, "
                    "accelerators: 8, nvlink: {bandwidth_GBps: 300}}\n")
    log = simulated_log(topo, 8, 8, SIZES, tmp_path / "lab.log")
    out = tmp_path / "elsewhere" / "lab-calibrated.yaml"
    assert _run(capsys, "calibrate", str(log), "-t", str(topo), "-o", str(out))[0] == 0
    assert "- ../src/gpus.yaml" in out.read_text()
    assert load_cluster(out).specs["node0/gpu0"].model == "Lab"


def test_a_folder_as_output_is_refused(dgx_log: Path, tmp_path: Path, capsys) -> None:
    code, _, err = _run(capsys, "calibrate", str(dgx_log), "-t", str(DGX), "-o", str(tmp_path))
    assert code == 2 and "a folder is there" in err
    assert list(tmp_path.iterdir()) == []


ROWS = [(1024, 20.0), (1048576, 100.0), (2**30, 5000.0)]


@pytest.mark.parametrize(("text", "topology", "args", "message"), [
    ("\x00\x01binary\xff", DGX, [], r"log.txt: no nccl-tests data row"),
    ("# nThread 1 nGpus 8\n#  size count\n", DGX, [],
     r"log.txt: no nccl-tests data row"),
    (log_text(ROWS, 8, 8) + "     2048     512  float\n", DGX, [],
     r"log.txt:\d+: not a complete nccl-tests data row"),
    (log_text(ROWS, 16, 8), DGX, [],
     r"log.txt:\d+: 16 ranks, but dgx-h100 has 8 accelerators"),
    (log_text(ROWS, 8, 4), TWO, [],
     (r"log.txt:\d+: the log ran 2 host\(s\) x 4 ranks, but h100-2node places 8 ranks as "
     r"1 host\(s\) x 8 ranks")),
    (log_text(ROWS + [(2**36, 3e5)], 8, 8), DGX, [],
     r"log.txt:\d+: all_reduce of 68719476736 B needs 128.0 GiB of buffers per GPU"),
    (log_text(ROWS, 8, 8, command=False), DGX, [], r"log.txt: .*give --collective"),
    (log_text(ROWS, 8, 8, command=False, rank_lines=False), DGX,
     ["--collective", "all_reduce"], r"log.txt: .*give --ranks N"),
    (log_text(ROWS, 8, 8), DGX, ["--fit-sizes", "1K"], r"--fit-sizes '1K': write MIN:MAX"),
    (log_text(ROWS, 8, 8), DGX, ["--fit-sizes", "1M:1K"], r"MIN is larger than MAX"),
    (log_text(ROWS, 8, 8), DGX, ["--fit-sizes", "1:512"], (r"no measured size of .*log.txt "
     r"in 1-512 B lies in a fitted band")),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path: Path, capsys, text: str,
                                              topology: Path, args: list[str],
                                              message: str) -> None:
    log = tmp_path / "log.txt"
    log.write_text(text, errors="surrogateescape")
    out = tmp_path / "calibrated.yaml"
    code, _stdout, stderr = _run(capsys, "calibrate", str(log), "-t", str(topology),
                                "-o", str(out), *args)
    assert code == 2, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    assert re.search(message, " ".join(stderr.split())), stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [log]
