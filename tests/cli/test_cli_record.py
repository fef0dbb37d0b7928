"""``simcluster record``: a workload file and a summary, or exit 2 with the operator and the
script line and no file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from simcluster.cli.app import main  # noqa: E402
from simcluster.workload import load_workload  # noqa: E402

SCRIPT = Path(__file__).parents[1] / "workload" / "record" / "nanogpt_train.py"


def test_record_writes_a_workload_and_reports_it(tmp_path: Path, capsys) -> None:
    out = tmp_path / "rec.parquet"
    with pytest.raises(SystemExit) as done:
        main(["record", str(SCRIPT), "-o", str(out), "--world-size", "4", "--json", "--",
              "--layers", "1", "--hidden", "32", "--heads", "2", "--vocab", "64",
              "--seq-len", "16", "--micro-batch", "1", "--accum", "1"])
    assert done.value.code in (0, None)
    report = json.loads(capsys.readouterr().out)
    wl = load_workload(out)
    assert wl.num_ranks == 4 and report["ops"] == wl.num_ops
    assert report["rank0"]["collective"] == 1 and report["fits"] is True
    n = 64 * 32 + 16 * 32 + 12 * 32 * 32 + 13 * 32 + 2 * 32
    assert report["memory"]["parameters"] == 4 * n


def test_unsupported_code_exits_2_naming_the_operator_and_line(tmp_path: Path, capsys) -> None:
    script = tmp_path / "bad.py"
    script.write_text("import torch\nx = torch.ones(3).cuda()\nprint(torch.nonzero(x))\n")
    out = tmp_path / "rec.parquet"
    with pytest.raises(SystemExit) as done:
        main(["record", str(script), "-o", str(out)])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "aten.nonzero" in err and "bad.py:3" in err and "Traceback" not in err
    assert not out.exists()


def _record(tmp_path: Path, script: Path, *options: str) -> tuple[int, Path]:
    out = tmp_path / f"rec{len(list(tmp_path.iterdir()))}.parquet"
    with pytest.raises(SystemExit) as done:
        main(["record", str(script), "-o", str(out), "--world-size", "1", "--warmup", "0",
              "--json", *options])
    return done.value.code or 0, out


def test_fuse_all_records_a_pointwise_chain_as_one_kernel(tmp_path: Path, capsys) -> None:
    script = tmp_path / "chain.py"
    script.write_text("import torch\nx = torch.ones(1024).cuda()\ny = torch.relu(x * 2 + 1)\n")
    names = {}
    for fuse in ("all", "none"):
        code, out = _record(tmp_path, script, "--fuse", fuse, "--no-host")
        assert code == 0 and json.loads(capsys.readouterr().out)["fits"]
        names[fuse] = load_workload(out).ops.column("name").to_pylist()[2:]  # ones, copy
    assert names == {"all": ["triton_poi_fused_add_mul_relu"],
                     "none": ["aten::mul", "aten::add", "aten::relu"]}


def test_an_unknown_fuse_mode_or_any_source_receive_exits_2_without_output(
        tmp_path: Path, capsys) -> None:
    script = tmp_path / "p2p.py"
    script.write_text("import torch, torch.distributed as dist\ndist.init_process_group()\n"
                      "dist.recv(torch.empty(4).cuda())\n")
    code, out = _record(tmp_path, script, "--fuse", "some")
    assert code == 2 and not out.exists() and "fuse is 'some'" in capsys.readouterr().err
    code, out = _record(tmp_path, script)
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert "c10d::recv_any_source_" in err and "p2p.py:3" in err and "Traceback" not in err
