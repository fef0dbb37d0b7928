"""The command line as a user meets it: output, exit codes, and clean failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from simcluster.cli import main
from tests.conftest import ROOT

TOPO = str(ROOT / "topologies" / "h100-2node.yaml")
TRACE = str(ROOT / "traces" / "dp-transformer-16.parquet")


def _run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return int(exit_.value.code or 0), out, err


def test_topology_check_show_schema(capsys) -> None:
    code, out, _ = _run(capsys, "topology", "check", TOPO)
    assert code == 0 and "16 accelerators, 2 host(s)" in out
    code, out, _ = _run(capsys, "topology", "show", TOPO)
    assert code == 0 and "host node0" in out and "1 more host(s) like node0" in out
    assert "nvlink 450 GB/s" in out and "ib 50 GB/s" in out
    code, out, _ = _run(capsys, "topology", "schema")
    assert code == 0 and json.loads(out)["title"] == "simcluster topology"


def test_trace_info(capsys) -> None:
    code, out, _ = _run(capsys, "trace", "info", TRACE)
    assert code == 0
    assert "ranks            16" in out and "all_reduce" in out
    assert "communicator groups: 1 group of 16 ranks" in out


def test_replay_prints_and_writes(capsys, tmp_path: Path) -> None:
    out_dir = tmp_path / "run"
    code, out, _ = _run(capsys, "replay", TRACE, "--topology", TOPO, "--out", str(out_dir))
    assert code == 0
    assert "step time" in out and "per-rank breakdown" in out and "busiest links" in out
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["ranks"] == 16 and summary["step_time_us"] > 0
    assert pq.read_table(out_dir / "timeline.parquet").num_rows == summary["ops"]
    code, out, _ = _run(capsys, "replay", TRACE, "-t", TOPO, "--quiet", "--placement", "spread")
    assert code == 0 and float(out) > 0


def test_generate_then_replay(capsys, tmp_path: Path) -> None:
    wl = tmp_path / "w.parquet"
    code, out, _ = _run(capsys, "generate", "data-parallel", "-o", str(wl), "--ranks", "8",
                        "--layers", "2")
    assert code == 0 and "8 ranks" in out
    code, out, _ = _run(capsys, "replay", str(wl), "-t", str(ROOT / "topologies" / "pcie-8gpu.yaml"),
                        "-q")
    assert code == 0 and float(out) > 0


def _bad(tmp_path: Path, name: str, text: str | bytes) -> str:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(p)


BAD_TOPOLOGIES = {
    "yaml syntax": ("name: t\nnodes: [\n", "YAML syntax error"),
    "unknown key": ("name: t\nnodez: []\n", "unknown key"),
    "negative bandwidth": (
        "name: t\ndevices:\n  - {name: a, kind: accelerator, model: H100}\n"
        "  - {name: b, kind: accelerator, model: H100}\n"
        "links:\n  - {src: a, dst: b, bandwidth_GBps: -1}\n", "greater than 0"),
    "zero bandwidth": (
        "name: t\nnodes:\n  - {accelerator: H100, nics: {count: 1, bandwidth_GBps: 0}}\n",
        "greater than 0"),
    "disconnected": (
        "name: t\nnodes:\n  - {accelerator: H100, count: 2, accelerators: 8}\n",
        "unconnected parts"),
    "unknown accelerator": ("name: t\nnodes:\n  - {accelerator: TPUv9}\n",
                            "known models: A100-PCIe-40GB, A100-PCIe-80GB, A100-SXM4-40GB"),
}


@pytest.mark.parametrize("case", sorted(BAD_TOPOLOGIES))
def test_bad_topology_exits_2_without_traceback_or_output(capsys, tmp_path: Path,
                                                          case: str) -> None:
    text, expected = BAD_TOPOLOGIES[case]
    topo = _bad(tmp_path, "bad.yaml", text)
    out_dir = tmp_path / "out"
    code, out, err = _run(capsys, "replay", TRACE, "-t", topo, "--out", str(out_dir))
    assert code == 2
    assert "bad.yaml" in err and expected in err and "Traceback" not in err + out
    assert not out_dir.exists()


def test_bad_traces_exit_2(capsys, tmp_path: Path) -> None:
    data = Path(TRACE).read_bytes()
    out_dir = tmp_path / "out"
    for name, content, expected in (
        ("cut.parquet", data[: len(data) // 3], "truncated"),
        ("json.parquet", b'{"traceEvents": []}', "not a readable Parquet file"),
    ):
        code, out, err = _run(capsys, "replay", _bad(tmp_path, name, content), "-t", TOPO,
                              "--out", str(out_dir))
        assert code == 2 and name in err and expected in err and "Traceback" not in err
        assert not out_dir.exists()


def test_missing_columns_exit_2(capsys, tmp_path: Path) -> None:
    t = pq.read_table(TRACE)
    p = tmp_path / "cols.parquet"
    pq.write_table(t.drop_columns(["stream"]).replace_schema_metadata(t.schema.metadata), p)
    code, _, err = _run(capsys, "trace", "info", str(p))
    assert code == 2 and "missing required column(s) stream" in err


def test_placement_that_does_not_fit_exits_2(capsys, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _, err = _run(capsys, "replay", TRACE, "-t", str(ROOT / "topologies" / "pcie-8gpu.yaml"),
                        "--out", str(out_dir))
    assert code == 2 and "16 ranks but cluster 'pcie-8gpu' has 8 accelerators" in err
    assert list(out_dir.iterdir()) == []  # an existing folder is left as it was
    place = _bad(tmp_path, "p.yaml", "ranks:\n  0: node0/gpu0\n  1: node0/gpu0\n")
    code, _, err = _run(capsys, "replay", TRACE, "-t", TOPO, "--placement", place)
    assert code == 2 and "given to rank 0 and rank 1" in err


def test_usage_errors_exit_2(capsys) -> None:
    code, _, err = _run(capsys, "replay", TRACE)
    assert code == 2 and "--topology" in err
    code, _, _ = _run(capsys, "no-such-command")
    assert code == 2


def test_installed_console_script_runs() -> None:
    env = {**os.environ, "COLUMNS": "120"}
    proc = subprocess.run([sys.executable, "-m", "simcluster", "topology", "check", TOPO],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and "ok:" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "simcluster", "trace", "info", "/nonexistent"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "file not found" in proc.stderr and "Traceback" not in proc.stderr


def test_collectives_table_and_csv(capsys, tmp_path: Path) -> None:
    out_csv = tmp_path / "ar.csv"
    code, out, _ = _run(capsys, "collectives", "-t", str(ROOT / "topologies" / "dgx-h100.yaml"),
                        "--min", "1K", "--max", "1G", "-f", "1024", "--csv", str(out_csv))
    assert code == 0 and "out-of-place" in out and "nvls/Simple" in out
    rows = [line.split() for line in out.splitlines() if line[:1] == " "]
    # nccl-tests' 13 columns (out-of-place and in-place, #wrong N/A), then the algorithm.
    assert [r[0] for r in rows] == ["1024", "1048576", "1073741824"]
    assert all(len(r) == 15 and r[2] == "float" and r[3] == "sum" and r[8] == "N/A"
               and r[5:8] == r[9:12] for r in rows)
    avg = [line for line in out.splitlines() if line.startswith("# Avg bus bandwidth")]
    assert float(avg[0].split(":")[1]) == pytest.approx(sum(float(r[7]) for r in rows) / 3,
                                                        abs=0.01)
    lines = out_csv.read_text().splitlines()
    assert lines[0].startswith("collective,ranks,size_bytes") and len(lines) == 1 + 3
    assert [int(line.split(",")[2]) for line in lines[1:]] == [1024, 2**20, 2**30]


def test_collectives_forced_algorithm_and_bad_arguments(capsys) -> None:
    topo = str(ROOT / "topologies" / "dgx-h100.yaml")
    code, out, _ = _run(capsys, "collectives", "-t", topo, "--min", "1M", "--max", "1M",
                        "--algo", "ring", "--proto", "Simple")
    assert code == 0 and "ring/Simple" in out
    for args, expected in ((["--algo", "spiral"], "--algo 'spiral'"),
                           (["--op", "allreduce"], "unknown collective 'allreduce'"),
                           (["--min", "1G", "--max", "1K"], "need 0 < min"),
                           (["--max", "lots"], "size 'lots'"),
                           (["--algo", "tree"], "algorithm 'tree' cannot run all_reduce"),
                           (["--library", "nvshmem"], "--library 'nvshmem'")):
        code, _, err = _run(capsys, "collectives", "-t", topo, *args)
        assert code == 2 and expected in err and "Traceback" not in err, args


def test_collectives_follow_the_library_of_the_accelerators_or_the_one_named(capsys) -> None:
    topo = str(ROOT / "topologies" / "mi300x-8gpu.yaml")
    code, out, _ = _run(capsys, "collectives", "-t", topo, "--min", "1K", "--max", "1K")
    assert code == 0 and "RCCL tuning" in out and "allpairs/LL" in out
    code, out, _ = _run(capsys, "collectives", "-t", topo, "--min", "1K", "--max", "1K",
                        "--library", "nccl", "--json")
    assert code == 0 and '"library": "nccl"' in out and '"algorithm": "ring/LL"' in out


def test_report_export_and_diff_from_run_folders(capsys, tmp_path: Path) -> None:
    pytest.importorskip("plotly")
    a, b = tmp_path / "a", tmp_path / "b"
    assert _run(capsys, "replay", TRACE, "-t", TOPO, "-q", "--out", str(a))[0] == 0
    slow = tmp_path / "slow.yaml"
    slow.write_text(Path(TOPO).read_text().replace("fabric:\n  topology: single-switch\n",
                                                   "fabric:\n  topology: single-switch\n"
                                                   "network:\n  link_efficiency: {nvlink: 0.2}\n"))
    assert _run(capsys, "replay", TRACE, "-t", str(slow), "-q", "--out", str(b))[0] == 0
    code, out, _ = _run(capsys, "report", str(a))
    assert code == 0 and (a / "report.html").is_file()
    code, out, _ = _run(capsys, "export", str(a), "--format", "perfetto", "--max-ranks", "4")
    trace = json.loads((a / "trace.json").read_text())
    assert code == 0 and trace["metadata"]["simcluster"]["ranks_shown"] == 4
    code, out, _ = _run(capsys, "diff", str(a), str(b))
    assert code == 0 and "step time" in out and "allreduce.bucket" in out
    assert "comm:nvlink" in out


def test_run_folder_commands_fail_cleanly(capsys, tmp_path: Path) -> None:
    code, _, err = _run(capsys, "report", str(tmp_path / "nope"))
    assert code == 2 and "not a folder" in err
    (tmp_path / "half").mkdir()
    code, _, err = _run(capsys, "diff", str(tmp_path / "half"), str(tmp_path / "half"))
    assert code == 2 and "timeline.parquet: missing" in err and "Traceback" not in err
    code, _, err = _run(capsys, "export", str(tmp_path / "half"), "--format", "svg")
    assert code == 2 and "--format 'svg'" in err


def test_generate_transformer_then_replay_reports_training_metrics(capsys, tmp_path: Path
                                                                   ) -> None:
    wl = tmp_path / "t.parquet"
    code, out, _ = _run(capsys, "generate", "transformer", "--preset", "llama3-8b",
                        "--layers", "4", "--seq-len", "1024", "--tp", "2", "--pp", "2",
                        "--dp", "4", "--global-batch", "16", "--schedule",
                        "1f1b-interleaved:2", "--sequence-parallel", "--recompute", "selective",
                        "--zero", "1", "-o", str(wl))
    assert code == 0, out
    assert "16 ranks" in out and "folded" in out and "memory per GPU" in out
    out_dir = tmp_path / "run"
    code, out, _ = _run(capsys, "replay", str(wl), "-t", TOPO, "--out", str(out_dir))
    assert code == 0, out
    assert "MFU" in out and "tokens/s" in out and "pipeline bubble" in out and "ok" in out
    summary = json.loads((out_dir / "summary.json").read_text())
    tr = summary["training"]
    assert 0 < tr["mfu"] < 1 and tr["tokens_per_s"] > 0 and not tr["memory"]["oom"]
    assert tr["pipeline"]["micro_batches"] == 4 and tr["pipeline"]["chunks"] == 2


def test_oversized_model_is_reported_as_oom_with_the_breakdown(capsys, tmp_path: Path) -> None:
    wl = tmp_path / "gpt3.parquet"
    code, _, _ = _run(capsys, "generate", "transformer", "--preset", "gpt3-175b", "-o", str(wl))
    assert code == 0
    topo = _bad(tmp_path, "one.yaml", "name: one-a100\nnodes:\n"
                "  - {accelerator: A100, accelerators: 1, fabric: pcie}\n")
    code, out, err = _run(capsys, "replay", str(wl), "-t", topo)
    assert code == 2 and "Traceback" not in err + out
    assert "out of memory" in err and "pipeline stage 0 needs" in err
    for category in ("weights", "grads", "optimizer", "activations", "buffers"):
        assert category in err
    assert "exceeds the 80 GiB capacity" in err


def test_generate_transformer_bad_input_exits_2(capsys, tmp_path: Path) -> None:
    code, _, err = _run(capsys, "generate", "transformer", "--preset", "gpt5", "-o",
                        str(tmp_path / "x.parquet"))
    assert code == 2 and "unknown preset 'gpt5'" in err
    code, _, err = _run(capsys, "generate", "transformer", "--preset", "gpt2-xl", "--tp", "2",
                        "-o", str(tmp_path / "x.parquet"))
    assert code == 2 and "heads 25" in err and not (tmp_path / "x.parquet").exists()


def test_generate_transformer_host_us_adds_a_launch_per_op(capsys, tmp_path: Path) -> None:
    from simcluster.workload import load_workload

    paths = [tmp_path / "plain.parquet", tmp_path / "host.parquet"]
    for path, extra in zip(paths, ([], ["--host-us", "25"])):
        code, out, _ = _run(capsys, "generate", "transformer", "--preset", "llama3-8b",
                            "--layers", "2", "--seq-len", "256", "--dp", "2", *extra,
                            "-o", str(path))
        assert code == 0, out
    plain, host = (load_workload(p) for p in paths)
    launches = host.ops.filter(pc.equal(host.ops["kind"], "host"))
    assert launches.num_rows == plain.ops.filter(pc.equal(plain.ops["rank"], 0)).num_rows
    assert set(launches.column("duration_us").to_pylist()) == {25.0}
    code, _, err = _run(capsys, "generate", "transformer", "--preset", "llama3-8b",
                        "--host-us", "-1", "-o", str(tmp_path / "x.parquet"))
    assert code == 2 and "--host-us" in err and not (tmp_path / "x.parquet").exists()


def test_generate_transformer_bucket_split_cuts_layers_into_buckets(capsys, tmp_path: Path
                                                                    ) -> None:
    from simcluster.workload import load_workload

    paths = [tmp_path / "layers.parquet", tmp_path / "split.parquet"]
    for path, extra in zip(paths, ([], ["--bucket-split"])):
        code, out, _ = _run(capsys, "generate", "transformer", "--preset", "llama3-8b",
                            "--layers", "2", "--seq-len", "256", "--dp", "2", "--zero", "1",
                            "--bucket-params", "100000000", *extra, "-o", str(path))
        assert code == 0, out
    counts = []
    for wl in (load_workload(p) for p in paths):
        ops = wl.ops.filter(pc.and_(pc.equal(wl.ops["rank"], 0),
                                    pc.equal(wl.ops["collective"], "reduce_scatter")))
        counts.append(sorted(ops.column("comm_bytes").to_pylist()))
    layers, split = counts
    assert sum(layers) == sum(split)  # the same gradients, in more, smaller buckets
    assert len(split) > len(layers) and max(split) == 4 * 100_000_000


def test_replay_retargets_durations_recorded_on_another_device(capsys, tmp_path: Path) -> None:
    """A GEMM recorded at 5 ms on an A100 runs faster on the H100 cluster, by the compute
    model's ratio; without flops/bytes the recorded time stays."""
    from simcluster.sim.compute import ComputeModel
    from simcluster.topology.catalog import ACCELERATORS
    from simcluster.workload import write_workload
    from tests.conftest import workload

    flops, nbytes = 2 * 8192.0**3, 6 * 8192**2
    rows = [{"rank": r, "kind": "compute", "duration_us": 5000.0, "flops": flops,
             "bytes_accessed": nbytes, "dtype": "bf16"} for r in range(16)]
    wl = workload(rows, world=16).with_meta(recorded_device="A100-SXM4-80GB")
    path = tmp_path / "rec.parquet"
    write_workload(wl, path)
    code, out, _ = _run(capsys, "replay", str(path), "-t", TOPO, "-q")
    model = ComputeModel()
    a100, h100 = ACCELERATORS["A100-SXM4-80GB"], ACCELERATORS["H100-SXM5-80GB"]
    ratio = (model.roofline_us([flops], [nbytes], "bf16", h100)
             / model.roofline_us([flops], [nbytes], "bf16", a100))[0]
    assert code == 0 and float(out) == pytest.approx(5000.0 * ratio, rel=1e-3)


def test_version_and_json_documents(capsys) -> None:
    import simcluster

    code, out, _ = _run(capsys, "--version")
    assert code == 0 and out.strip() == f"simcluster {simcluster.__version__}"
    code, out, _ = _run(capsys, "topology", "check", TOPO, "--json")
    assert code == 0 and json.loads(out)["accelerators"] == 16
    code, out, _ = _run(capsys, "trace", "info", TRACE, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["ranks"] == 16 and doc["ops"] == 688
    assert sum(r["ops"] for r in doc["by_kind"]) == 688 and doc["groups"] == {"16": 1}
    code, out, _ = _run(capsys, "replay", TRACE, "-t", TOPO, "--json")
    doc = json.loads(out)
    code_q, quiet, _ = _run(capsys, "replay", TRACE, "-t", TOPO, "-q")
    assert code == 0 and doc["fidelity"] == [] and doc["import_report"] is None
    assert f"{doc['summary']['step_time_us']:.3f}" == quiet.strip()
    code, out, _ = _run(capsys, "collectives", "-t", str(ROOT / "topologies" / "dgx-h100.yaml"),
                        "--min", "1M", "--max", "4M", "--json")
    doc = json.loads(out)
    assert code == 0 and [r["size"] for r in doc["rows"]] == [2**20, 2**21, 2**22]
    assert all(r["busbw_GBps"] == pytest.approx(r["algbw_GBps"] * 2 * 7 / 8) for r in doc["rows"])


def test_a_run_prints_in_one_line() -> None:
    import simcluster as sc

    text = repr(sc.replay(TRACE, TOPO).run)
    assert "\n" not in text and "timeline 688" in text and len(text) < 300


def test_brackets_in_messages_are_printed_as_written(capsys, tmp_path: Path) -> None:
    # rich would eat "[report]" as markup; the message must show it (install hints have it).
    code, _, err = _run(capsys, "replay", str(tmp_path / "run[report].parquet"))
    assert code == 2 and "run[report].parquet" in err.replace("\n", "")


def test_replay_comm_sms_what_if(capsys, tmp_path: Path) -> None:
    # Data-parallel backward overlaps its gradient all-reduces: communication that takes
    # more SMs from the compute makes the step longer; 0 turns the interference off.
    wl = tmp_path / "w.parquet"
    code, _, _ = _run(capsys, "generate", "data-parallel", "-o", str(wl), "--ranks", "16",
                      "--layers", "4")
    assert code == 0
    steps = {}
    for sms in ("0", "16", "64"):
        code, out, _ = _run(capsys, "replay", str(wl), "-t", TOPO, "-q", "--comm-sms", sms)
        assert code == 0
        steps[sms] = float(out)
    code, out, _ = _run(capsys, "replay", str(wl), "-t", TOPO, "-q")
    assert float(out) == steps["16"]  # the H100 default
    assert steps["0"] < steps["16"] < steps["64"]
    code, out, err = _run(capsys, "replay", str(wl), "-t", TOPO, "--comm-sms", "132")
    assert code == 2 and "comm_sms = 132" in err and "Traceback" not in err and not out
