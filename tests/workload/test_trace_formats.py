"""The trace format registry: a toy text format added through it alone loads with
``load_workload`` and replays; the built-in formats keep their detection order."""

from __future__ import annotations

from pathlib import Path

import pytest

from simcluster.errors import WorkloadError
from simcluster.workload import load_workload, write_workload
from simcluster.workload.formats import detect, registered_trace_format, trace_format_names
from tests.conftest import ROOT, replay, star
from tests.toys import OPSLINES

GB = 10**9
TRACE = """\
#opslines
rank=0 kind=compute duration_us=100
rank=0 kind=collective collective=all_reduce comm_bytes=1000000000 group=w
rank=1 kind=collective collective=all_reduce comm_bytes=1000000000 group=w
"""


def _trace(tmp_path: Path) -> Path:
    path = tmp_path / "job.txt"
    path.write_text(TRACE)
    return path


def test_built_in_formats_in_detection_order() -> None:
    assert trace_format_names() == ("chakra", "kineto", "native")
    assert detect(ROOT / "traces" / "dp-transformer-16.parquet").name == "native"


def test_toy_format_loads_and_replays_with_the_hand_computed_time(tmp_path: Path) -> None:
    path = _trace(tmp_path)
    with registered_trace_format(OPSLINES):
        assert trace_format_names()[-1] == "opslines"
        wl = load_workload(path)
    assert wl.groups == {"w": (0, 1)}
    assert wl.ops.column("kind").to_pylist() == ["compute", "collective", "collective"]
    # Rank 1 waits for rank 0's 100 us; a 2-rank ring all_reduce of S on 100 GB/s links
    # moves 2 (p-1)/p S = S through each link: 1e9 / 1e5 B/us.
    run = replay(wl, star(2, 100.0))
    assert run.makespan_us == pytest.approx(100.0 + GB / 1e5, rel=1e-9)


def test_toy_format_can_be_named_and_round_trips_to_native(tmp_path: Path) -> None:
    path = _trace(tmp_path)
    with registered_trace_format(OPSLINES):
        wl = load_workload(path, format="opslines")
    native = write_workload(wl, tmp_path / "job.parquet")
    assert load_workload(native).ops.equals(wl.ops)


def test_without_the_toy_the_file_goes_to_the_native_reader(tmp_path: Path) -> None:
    path = _trace(tmp_path)
    with pytest.raises(WorkloadError, match="job.txt: not a readable Parquet file"):
        load_workload(path)
    with pytest.raises(WorkloadError, match="unknown trace format 'opslines'; .*known trace "
                       "formats: chakra, kineto, native"):
        load_workload(path, format="opslines")


def test_an_empty_folder_lists_what_the_registered_formats_read(tmp_path: Path) -> None:
    with registered_trace_format(OPSLINES):
        with pytest.raises(WorkloadError, match=r"a folder without traces; simcluster reads "
                           r"Chakra traces .*, PyTorch profiler traces .*, native workloads "
                           r"\(\*.parquet\) and op lines \(#opslines\)"):
            load_workload(tmp_path)
    with pytest.raises(WorkloadError, match=r"native workloads \(\*.parquet\)\.$"):
        load_workload(tmp_path)
