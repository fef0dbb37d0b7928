"""Reading nccl-tests logs and calibration CSVs for calibration: what a log says about its run,
and errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from simcluster.calibrate import read_csv, read_log, read_measurements
from simcluster.errors import CalibrationError
from tests.calibrate.synthetic import log_text

ROWS = [(1024, 20.0), (1048576, 100.0), (2**30, 5000.0)]


def _log(tmp_path: Path, text: str, name: str = "log.txt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_log_names_its_collective_ranks_and_hosts(tmp_path: Path) -> None:
    text = log_text(ROWS, 16, 8)
    curve = read_log(_log(tmp_path, text))
    assert (curve.collective, curve.ranks, curve.hosts) == ("all_reduce", 16, (8, 8))
    assert [p.size for p in curve.points] == [1024, 1048576, 2**30]
    # busbw from the time, as nccl-tests computes it: 1 MiB in 100 us on 16 ranks.
    assert curve.points[1].busbw_GBps == pytest.approx(1048576 / 100.0 / 1e3 * 2 * 15 / 16)
    lines = text.splitlines()
    assert curve.points[0].line == 1 + next(
        i for i, line in enumerate(lines) if line.split()[:1] == ["1024"])
    assert curve.ranks_line == 1 + next(
        i for i, line in enumerate(lines) if "Rank 15" in line)


def test_the_rank_count_from_the_header_and_the_launcher(tmp_path: Path) -> None:
    # No rank lines: nThread 1 x nGpus 1 x mpirun -np 16.
    curve = read_log(_log(tmp_path, log_text(ROWS, 16, 8, rank_lines=False)))
    assert curve.ranks == 16 and curve.hosts == ()
    assert curve.ranks_line == 1  # the mpirun line


def test_a_launcher_split_over_lines_and_alltoall(tmp_path: Path) -> None:
    text = log_text(ROWS, 8, 8, collective="all_to_all", command=False, rank_lines=False)
    text = "> mpirun -v --hostfile h \\\n>    -np 8 \\\n>  ./alltoall_perf -b 8 -e 1G\n" + text
    curve = read_log(_log(tmp_path, text))
    assert (curve.collective, curve.ranks) == ("all_to_all", 8)


def test_options_serve_logs_that_do_not_say(tmp_path: Path) -> None:
    path = _log(tmp_path, log_text(ROWS, 8, 8, command=False, rank_lines=False))
    curve = read_log(path, collective="alltoall", ranks=8)
    assert (curve.collective, curve.ranks, curve.ranks_line) == ("all_to_all", 8, 0)


@pytest.mark.parametrize(("text", "options", "message"), [
    ("hello\n", {}, r"log.txt: no nccl-tests data row"),
    (log_text(ROWS, 8, 8, command=False), {}, (r"log.txt: the log does not say which "
     r"collective.*give --collective")),
    (log_text(ROWS, 8, 8, command=False, rank_lines=False), {"collective": "all_reduce"},
     r"log.txt: the log does not state its rank count.*give --ranks N"),
    (log_text(ROWS, 8, 8), {"collective": "all_gather"},
     r"log.txt:1: the log ran all_reduce but --collective says all_gather"),
    (log_text(ROWS, 8, 8), {"ranks": 4}, (r"log.txt:\d+: the log lists rank 7 \(8 ranks\) but "
     r"--ranks says 4")),
    (log_text(ROWS, 8, 8, collective="sendrecv"), {},
     r"log.txt:1: sendrecv cannot calibrate the model"),
    (log_text(ROWS, 8, 8) + "        4096          1024     float     sum\n", {},
     r"log.txt:\d+: not a complete nccl-tests data row"),
    (log_text(ROWS + [(1024, 21.0)], 8, 8), {}, (r"log.txt:\d+: size 1024 B was already "
     r"measured at line \d+")),
    (log_text([(1024, 0.0)], 8, 8), {}, r"log.txt:\d+: size 1024 B has a time of 0.0 us"),
    (log_text(ROWS, 1, 1), {}, r"log.txt:\d+: 1 rank; a collective needs at least 2"),
])
def test_bad_logs_name_the_file_and_line(tmp_path: Path, text: str, options: dict,
                                          message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        read_log(_log(tmp_path, text), **options)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match=r"nope.txt: cannot read it"):
        read_log(tmp_path / "nope.txt")


CSV = """\
system,gpus_per_node,nodes,collective,bytes,time_us,busbw_GBps
a,8,1,all_reduce,1024,,0.04
a,8,1,all_reduce,2048,20.0,
a,8,1,all_reduce,4096,,0.0
b,8,2,all_reduce,1024,30.0,
"""


def test_a_csv_gives_one_curve_per_system(tmp_path: Path) -> None:
    path = _log(tmp_path, CSV, "m.csv")
    (curve,) = read_csv(path, "a")
    assert (curve.source, curve.ranks) == (f"{path}[a]", 8)
    # 1 KiB: only busbw, so the time it implies; 4 KiB: neither, left out.
    assert [(p.size, p.line) for p in curve.points] == [(1024, 2), (2048, 3)]
    assert curve.points[0].time_us == pytest.approx(1024 / (0.04 / 1.75) / 1e3)
    assert curve.points[1].busbw_GBps == pytest.approx(2048 / 20.0 / 1e3 * 1.75)
    assert read_measurements([path], system="b")[0].ranks == 16


@pytest.mark.parametrize(("text", "system", "message"), [
    (CSV, None, r"m.csv: measures several systems \(a, b\); give --system NAME"),
    (CSV, "c", r"m.csv: no rows for system 'c'; the file has a, b"),
    ("system,bytes\n", None, r"m.csv:1: the header lacks gpus_per_node"),
    (CSV.replace("2048,20.0", "2048,fast"), "a", r"m.csv:3: could not convert"),
])
def test_bad_csvs(tmp_path: Path, text: str, system: str | None, message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        read_csv(_log(tmp_path, text, "m.csv"), system)
