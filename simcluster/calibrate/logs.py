"""Measured curves for calibration: nccl-tests logs and the calibration CSV, read with the
line each value came from, so that a bad input is reported where it is.

A :class:`Curve` is one collective measured on one rank count: per size the out-of-place
time (us) and busbw (GB/s, nccl-tests' definition). From a log it also keeps what the log
says about its run: which collective (an ``*_perf`` command line), how many ranks (the
``#  Rank N`` lines, or ``nThread x nGpus`` times the launcher's process count) and how the
ranks sit on hosts.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from simcluster.collective_perf import bus_factor
from simcluster.errors import CalibrationError

# nccl-tests binaries -> the simulator's collective names.
PERF_BINARIES: dict[str, str] = {
    "all_reduce": "all_reduce", "all_gather": "all_gather", "reduce_scatter": "reduce_scatter",
    "alltoall": "all_to_all", "broadcast": "broadcast", "reduce": "reduce",
    "sendrecv": "sendrecv", "gather": "gather", "scatter": "scatter", "hypercube": "hypercube",
}
# What the model can calibrate on: the collectives it schedules as nccl-tests runs them.
CALIBRATABLE: tuple[str, ...] = (
    "all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast", "reduce")

# size count type redop root, then out-of-place time algbw busbw #wrong (then in-place);
# some published excerpts keep only the 8 fields up to the out-of-place busbw.
_ROW = re.compile(r"^\s*(\d+)\s+(\d+)\s+(\S+)\s+(\S+)\s+(-?\d+)\s+([\d.]+)\s+([\d.]+)\s+"
                  r"([\d.]+)(?:\s+(\S+)|\s*$)")
_ROW_START = re.compile(r"^\s*\d+\s+\d+\s+[A-Za-z_]\w*(\s|$)")  # looks like a data row
# A rank line; published excerpts sometimes drop the host (``on HOST``).
_RANK = re.compile(r"^#\s*Rank\s+(\d+)\s+(?:Group\s+\d+\s+)?Pid\s+\d+(?:\s+on\s+(\S+))?")
_HEADER = re.compile(r"nThread\s+(\d+)\s+nGpus\s+(\d+)")
_BINARY = re.compile(r"\b(" + "|".join(PERF_BINARIES) + r")_perf\b")
MAX_LOG_BYTES = 64 * 2**20  # an nccl-tests log is a few KiB
_LAUNCHERS = ("mpirun", "mpiexec", "srun", "orterun")
_NP_FLAGS = ("-np", "-n", "--np", "--n", "--ntasks")


@dataclass(frozen=True)
class Point:
    """One measured size: bytes, time (us) and busbw (GB/s); ``line`` is where it was read
    (1-based; 0 if not from a file)."""

    size: int
    time_us: float
    busbw_GBps: float
    line: int = 0


@dataclass(frozen=True)
class Curve:
    """One collective measured on ``ranks`` ranks: points sorted by size.

    Attributes:
        source: the file it was read from (with ``[system]`` for a CSV).
        collective: simulator name (``all_reduce``, ``all_to_all``, ...).
        ranks: the rank count.
        points: the measured sizes, ascending.
        hosts: ranks per host, largest first (``(8, 8)``: two hosts of 8 ranks), when the
            log lists every rank; empty otherwise.
        ranks_line: the line that states the rank count (0: an option or a CSV column).
    """

    source: str
    collective: str
    ranks: int
    points: tuple[Point, ...]
    hosts: tuple[int, ...] = ()
    ranks_line: int = 0


@dataclass
class _Scan:
    """What one pass over a log found (line numbers are 1-based)."""

    rows: dict[int, Point]
    ranks: dict[int, tuple[str | None, int]]  # rank -> (host, or None if not given; line)
    binaries: dict[str, int]  # collective -> first line naming it
    per_process: tuple[int, int] | None = None  # (nThread x nGpus, line)
    processes: tuple[int, int] | None = None  # (launcher's process count, line)


def read_log(path: str | Path, collective: str | None = None,
             ranks: int | None = None) -> Curve:
    """Read an nccl-tests ``*_perf`` output (plain, or inside a Markdown page).

    Parameters:
        path: the log.
        collective: for a log that does not name its ``*_perf`` binary; must agree with it
            otherwise.
        ranks: for a log that does not state its rank count; must agree with it otherwise.

    Returns:
        The curve: out-of-place time per size, and the busbw nccl-tests computes from it (the
        printed busbw has two decimals only: 0.00 at small sizes).

    Raises:
        CalibrationError: unreadable, no data row, a malformed or repeated row, an unknown or
            ambiguous collective, a rank count that is missing or contradicts itself.
    """
    path = Path(path)
    scan = _scan(path, _read_text(path))
    if not scan.rows:
        raise CalibrationError(f"{path}: no nccl-tests data row (size count type redop root "
                               "time algbw busbw #wrong ...); give the output of an *_perf run.")
    name, count, line = _collective(path, scan, collective), *_ranks(path, scan, ranks)
    points = []
    for size in sorted(scan.rows):
        p = scan.rows[size]
        if not p.time_us > 0:
            raise CalibrationError(f"{path}:{p.line}: size {size} B has a time of {p.time_us} "
                                   "us; a measured time must be positive.")
        # busbw from the time, as nccl-tests computes it: more digits than the printed one.
        points.append(Point(size, p.time_us,
                            size / p.time_us / 1e3 * bus_factor(name, count), p.line))
    return Curve(str(path), name, count, tuple(points), _hosts(scan, count), line)


def scan_log(path: str | Path) -> tuple[list[Point], int | None]:
    """The data rows of an nccl-tests log (sorted by size) and its rank count as far as its
    ``#  Rank N`` lines state it (one more than the highest; None: none), without requiring
    what :func:`read_log` needs to calibrate (the collective, a stated rank count).

    Raises:
        CalibrationError: unreadable, no data row, a malformed or repeated row.
    """
    path = Path(path)
    scan = _scan(path, _read_text(path))
    if not scan.rows:
        raise CalibrationError(f"{path}: no nccl-tests data row (size count type redop root "
                               "time algbw busbw #wrong ...); give the output of an *_perf run.")
    return [scan.rows[k] for k in sorted(scan.rows)], (max(scan.ranks) + 1 if scan.ranks
                                                         else None)


def _read_text(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_LOG_BYTES:
            raise CalibrationError(f"{path}: larger than {MAX_LOG_BYTES // 2**20} MiB; an "
                                   "nccl-tests log is a few KiB: give the *_perf output.")
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read it ({exc.strerror}); give an nccl-tests "
                               "log.") from None


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with their numbers; a shell line ending in ``\\`` is joined with the next ones
    (numbered by its first line), so a launcher's options split over lines are one."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if pending is not None:
            line = pending[1] + " " + line.lstrip("> \t")
            number = pending[0]
        if line.rstrip().endswith("\\"):
            pending = (number, line.rstrip()[:-1])
            continue
        pending = None
        out.append((number, line))
    if pending is not None:
        out.append(pending)
    return out


def _scan(path: Path, text: str) -> _Scan:
    scan = _Scan(rows={}, ranks={}, binaries={})
    for number, line in _logical_lines(text):
        if m := _RANK.match(line):
            scan.ranks.setdefault(int(m.group(1)), (m.group(2), number))
        elif m := _ROW.match(line):
            size = int(m.group(1))
            if size in scan.rows:
                raise CalibrationError(
                    f"{path}:{number}: size {size} B was already measured at line "
                    f"{scan.rows[size].line}; give one run per log (split the file).")
            scan.rows[size] = Point(size, float(m.group(6)), float(m.group(8)), number)
        elif _ROW_START.match(line):
            raise CalibrationError(
                f"{path}:{number}: not a complete nccl-tests data row (size count type redop "
                f"root time algbw busbw #wrong ...): {line.strip()[:80]!r}; fix or remove it.")
        else:
            _scan_header(line, number, scan)
    return scan


def _scan_header(line: str, number: int, scan: _Scan) -> None:
    """The header's ``nThread T nGpus G``, the ``*_perf`` binaries and a launcher's process
    count (``mpirun -np N``, ``srun -n N``)."""
    if scan.per_process is None and (m := _HEADER.search(line)):
        scan.per_process = (int(m.group(1)) * int(m.group(2)), number)
    for m in _BINARY.finditer(line):
        scan.binaries.setdefault(PERF_BINARIES[m.group(1)], number)
    tokens = line.replace("=", " ").split()
    if scan.processes is None and any(t.rsplit("/", 1)[-1] in _LAUNCHERS for t in tokens):
        for flag, value in pairwise(tokens):
            if flag in _NP_FLAGS and value.isdigit():
                scan.processes = (int(value), number)
                break


def _collective(path: Path, scan: _Scan, given: str | None) -> str:
    if given is not None:
        given = PERF_BINARIES.get(given.removesuffix("_perf"), given)
    named = sorted(scan.binaries, key=scan.binaries.__getitem__)
    if len(named) > 1:
        raise CalibrationError(
            f"{path}:{scan.binaries[named[1]]}: the log names several nccl-tests binaries "
            f"({', '.join(n + '_perf' for n in named)}); give one run per log.")
    if named and given and named[0] != given:
        raise CalibrationError(
            f"{path}:{scan.binaries[named[0]]}: the log ran {named[0]} but --collective says "
            f"{given}; drop the option or give the right log.")
    name = named[0] if named else given
    if name is None:
        raise CalibrationError(
            f"{path}: the log does not say which collective it measured (no *_perf command "
            f"line); give --collective (one of {', '.join(CALIBRATABLE)}).")
    if name not in CALIBRATABLE:
        where = f":{scan.binaries[name]}" if name in scan.binaries else ""
        raise CalibrationError(
            f"{path}{where}: {name} cannot calibrate the model (the simulator runs nccl-tests' "
            f"{', '.join(CALIBRATABLE)}); give a log of one of those.")
    return name


def _ranks(path: Path, scan: _Scan, given: int | None) -> tuple[int, int]:
    """The rank count and the line that states it (0: the option)."""
    stated: tuple[int, int, str] | None = None
    if scan.ranks:
        top = max(scan.ranks)
        stated = (top + 1, scan.ranks[top][1], f"the log lists rank {top}")
    if scan.per_process and scan.processes:
        count = scan.per_process[0] * scan.processes[0]
        why = (f"its header and launcher say {scan.per_process[0]} per process x "
               f"{scan.processes[0]} processes")
        if stated and stated[0] != count:
            raise CalibrationError(f"{path}:{scan.processes[1]}: {why} = {count} ranks, but "
                                   f"{stated[2]} (line {stated[1]}); give a consistent log.")
        stated = stated or (count, scan.processes[1], why)
    if stated and given is not None and stated[0] != given:
        raise CalibrationError(f"{path}:{stated[1]}: {stated[2]} ({stated[0]} ranks) but "
                               f"--ranks says {given}; drop the option or give the right log.")
    if stated:
        count, line = stated[0], stated[1]
    elif given is not None:
        count, line = given, 0
    else:
        raise CalibrationError(f"{path}: the log does not state its rank count (no '#  Rank' "
                               "lines, no launcher command line); give --ranks N.")
    if count < 2:
        raise CalibrationError(f"{path}{f':{line}' if line else ''}: {count} rank; a "
                               "collective needs at least 2 ranks to calibrate the network.")
    return count, line


def _hosts(scan: _Scan, count: int) -> tuple[int, ...]:
    """Ranks per host, largest first, when the log lists every rank (else empty)."""
    if sorted(scan.ranks) != list(range(count)) or any(
            host is None for host, _ in scan.ranks.values()):
        return ()
    per_host = Counter(host for host, _ in scan.ranks.values())
    return tuple(sorted(per_host.values(), reverse=True))


_CSV_COLUMNS = ("system", "gpus_per_node", "nodes", "collective", "bytes")


def read_csv(path: str | Path, system: str | None = None) -> list[Curve]:
    """Curves from a calibration CSV (``nccl_allreduce_single_node.csv``'s columns: system,
    gpus_per_node, nodes, collective, bytes, time_us and/or busbw_GBps), one per (system,
    collective), for ``system`` or for the only system in the file.

    A point with neither a time nor a positive busbw (below a log's two decimals) is left
    out; one with only a busbw gets the time that busbw implies.

    Raises:
        CalibrationError: unreadable, missing columns, a bad number (its line), no rows for
            ``system``, or several systems and no ``system`` given.
    """
    path = Path(path)
    text = _read_text(path)
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in _CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing or not {"time_us", "busbw_GBps"} & set(reader.fieldnames or []):
        raise CalibrationError(f"{path}:1: the header lacks {', '.join(missing) or 'time_us'} "
                               f"(need {', '.join(_CSV_COLUMNS)} and time_us or busbw_GBps).")
    rows: dict[tuple[str, str], list[tuple[int, dict[str, str]]]] = {}
    for row in reader:
        rows.setdefault((row["system"], row["collective"]), []).append((reader.line_num, row))
    systems = sorted({s for s, _ in rows})
    if system is None and len(systems) > 1:
        raise CalibrationError(f"{path}: measures several systems ({', '.join(systems)}); "
                               "give --system NAME.")
    chosen = system if system is not None else (systems[0] if systems else None)
    curves = [_csv_curve(path, key, items) for key, items in sorted(rows.items())
              if key[0] == chosen]
    if not curves:
        raise CalibrationError(f"{path}: no rows for system {chosen!r}; the file has "
                               f"{', '.join(systems) or 'no data rows'}.")
    return curves


def _csv_curve(path: Path, key: tuple[str, str], items: list[tuple[int, dict[str, str]]]
               ) -> Curve:
    system, collective = key
    if collective not in CALIBRATABLE:
        raise CalibrationError(f"{path}:{items[0][0]}: collective {collective!r} cannot "
                               f"calibrate the model; use one of {', '.join(CALIBRATABLE)}.")
    points: dict[int, Point] = {}
    ranks = first = 0
    for line, row in items:
        try:
            size = int(row["bytes"])
            ranks = int(row["gpus_per_node"]) * int(row["nodes"])
            t = float(row.get("time_us") or "nan")
            bus = float(row.get("busbw_GBps") or "nan")
        except ValueError as exc:
            raise CalibrationError(f"{path}:{line}: {exc}; give numbers in gpus_per_node, "
                                   "nodes, bytes, time_us and busbw_GBps.") from None
        if first and ranks != first:
            raise CalibrationError(f"{path}:{line}: {ranks} ranks, where line {items[0][0]} of "
                                   f"{system} {collective} has {first}; give one rank count "
                                   "per system (or a system name per count).")
        first = ranks
        if ranks < 2 or size <= 0:
            raise CalibrationError(f"{path}:{line}: {ranks} ranks, {size} B; need at least 2 "
                                   "ranks and a positive size.")
        if not t > 0 and bus > 0:
            t = size / (bus / bus_factor(collective, ranks)) / 1e3
        if not t > 0:
            continue
        if not bus > 0:
            bus = size / t / 1e3 * bus_factor(collective, ranks)
        points.setdefault(size, Point(size, t, bus, line))
    if not points:
        raise CalibrationError(f"{path}: no usable row for {system} {collective} (each needs a "
                               "positive time_us or busbw_GBps).")
    return Curve(f"{path}[{system}]", collective, ranks,
                 tuple(points[s] for s in sorted(points)))
