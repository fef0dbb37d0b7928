"""Fuzz every input parser with mutated real files; count crashes, hangs and memory.

Usage::

    python bench/fuzz.py                      # 10,000 inputs per parser
    python bench/fuzz.py -n 200 --parsers chakra,kineto --workers 2 --seed 1

Seeds are real files: topologies from ``topologies/``, a placement written here, the sweep
spec ``bench/sweeps/gpt3-175b-1024.yaml``, the native workload ``traces/*.parquet``, Kineto
traces from ``../shared/data/kineto`` and Chakra traces from ``../shared/data/chakra`` (a
parser whose seeds are absent is left out, and says so). Each input is a seed with one to
three mutations: byte-level (bit flips, interesting bytes, insertions, deletions, duplicated
or truncated ranges) or structural (a value of the parsed document replaced by an
interesting one: NaN, 2**64, -1, a deep list, a string, null, a wrong type; metadata and
columns of the Parquet file replaced).

Inputs run in long-lived worker processes, one input at a time each. A worker that has not
answered in ``--timeout`` seconds (10) is killed and the input counted as a hang; one whose
resident memory passes ``--mem-gb`` (1 GiB) is killed and counted as over memory. Each
input's peak memory is the worker's peak RSS while it ran (``VmHWM``, reset before each input
through ``/proc/self/clear_refs``). An exception that is not a ``SimclusterError`` is a
crash. The inputs of crashes, hangs and over-memory runs are kept in ``--keep``
(``/tmp/simcluster-fuzz``) with the traceback, to reproduce them.

Prints one row per parser: inputs, accepted, refused (SimclusterError), crashes, hangs,
over memory, the largest peak RSS and the slowest input.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import io
import json
import math
import multiprocessing as mp
import os
import queue
import random
import shutil
import tempfile
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PARSERS = ("topology", "placement", "sweep", "native", "kineto", "chakra")

PLACEMENT_SEED = """\
# ranks 0..7 on the GPUs of a DGX H100, reversed
ranks:
  0: node0/gpu7
  1: node0/gpu6
  2: node0/gpu5
  3: node0/gpu4
  4: node0/gpu3
  5: node0/gpu2
  6: node0/gpu1
  7: node0/gpu0
"""

INTERESTING_BYTES = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0xFE, 0x0A, 0x22, 0x5B, 0x7B, 0x2A, 0x26]
TEXT_TOKENS = [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1", b"0", b"9" * 25,
               b"18446744073709551616", b"9223372036854775808", b"[", b"]", b"{", b"}", b'"',
               b",", b":", b"\n", b"  ", b"- ", b"&a ", b"*a", b"<<: ", b"!!binary ", b"~",
               b"null", b"true", b".nan", b".inf", b"-.inf", b"\t", b"\xff\xfe", b"#",
               b"[" * 200, b"1" * 5000]
VALUES: list[Any] = [math.nan, math.inf, -math.inf, 2**64, 2**63, -(2**63) - 1, -1, 0, 1e308,
                     -1e-300, "", "x" * 300, "NaN", [], {}, None, True, [[[[[[1]]]]]],
                     [1, "a", None], {"a": {"b": [1]}}, 10**30, 0.5, -7]


# -- mutations --------------------------------------------------------------------------------

def mutate_bytes(data: bytes, rng: random.Random, text: bool) -> bytes:
    """One to three byte-level mutations of ``data``."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        n = len(buf)
        op = rng.randrange(7)
        pos = rng.randrange(n + 1) if n else 0
        if op == 0 and n:  # bit flip
            buf[min(pos, n - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and n:  # interesting byte
            buf[min(pos, n - 1)] = rng.choice(INTERESTING_BYTES)
        elif op == 2:  # insert a token (text) or random bytes
            ins = rng.choice(TEXT_TOKENS) if text else bytes(
                rng.randrange(256) for _ in range(rng.randint(1, 8)))
            buf[pos:pos] = ins
        elif op == 3 and n:  # delete a range
            buf[pos:pos + rng.randint(1, 64)] = b""
        elif op == 4 and n:  # duplicate a range elsewhere
            a = rng.randrange(n)
            piece = bytes(buf[a:a + rng.randint(1, 256)])
            buf[pos:pos] = piece * rng.choice((1, 1, 2, 16))
        elif op == 5 and n:  # truncate
            del buf[rng.randrange(n):]
        elif op == 6 and n:  # overwrite with a big varint / number
            tok = rng.choice(TEXT_TOKENS) if text else b"\xff" * rng.randint(1, 10) + b"\x01"
            buf[pos:pos + len(tok)] = tok
    return bytes(buf)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value in a JSON/YAML document."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:50]):
            out += _paths(v, prefix + (i,))
    return out


def mutate_doc(doc: Any, rng: random.Random) -> Any:
    """``doc`` (a deep copy) with one to three values replaced, deleted or duplicated. Every
    value put in is a copy, so the document stays a tree and ``VALUES`` is never changed."""
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            return copy.deepcopy(rng.choice(VALUES))
        path = rng.choice(paths)
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        last = path[-1]
        op = rng.randrange(4)
        if op == 0 or op == 3:
            parent[last] = copy.deepcopy(rng.choice(VALUES))
        elif op == 1:
            if isinstance(parent, dict):
                parent.pop(last, None)
            else:
                parent.pop(last)
        else:
            value = parent[last]
            if isinstance(parent, list):
                parent.extend(copy.deepcopy(value) for _ in range(rng.choice((1, 10))))
            else:
                parent[f"{last}_x" if rng.random() < 0.5 else last] = copy.deepcopy(value)
    return doc


# -- seeds and inputs -------------------------------------------------------------------------

@dataclass
class Seeds:
    """The seed files of one parser: (name, bytes) pairs, and how to write an input."""

    parser: str
    files: list[tuple[str, bytes]] = field(default_factory=list)
    folder: Path | None = None  # for Chakra: a folder of rank files, one of them mutated


def load_seeds(parser: str, tmp: Path) -> Seeds | None:
    """The seeds of ``parser``; None when its seed files are absent."""
    s = Seeds(parser)
    if parser == "topology":
        s.files = [(p.name, p.read_bytes()) for p in sorted((ROOT / "topologies").glob("*.yaml"))
                   if "superpod" not in p.name]  # the superpods take 0.1 s each to build
    elif parser == "placement":
        s.files = [("placement.yaml", PLACEMENT_SEED.encode())]
    elif parser == "sweep":
        s.files = [(p.name, p.read_bytes()) for p in sorted((ROOT / "bench/sweeps").glob("*.yaml"))]
    elif parser == "native":
        s.files = [(p.name, p.read_bytes()) for p in sorted((ROOT / "traces").glob("*.parquet"))]
    elif parser == "kineto":
        root = SHARED / "kineto"
        picks = ["single-rank/a100-event-sync-3streams.json.gz",
                 "single-rank/mi250-rocm-minitoy.json.gz", "dlrm-v100-8rank/rank-0.json.gz",
                 "single-rank/sampled-128rank-rank0.json.gz"]
        s.files = [(p, gzip.decompress((root / p).read_bytes())) for p in picks
                   if (root / p).is_file()]
    elif parser == "chakra":
        root = SHARED / "chakra" / "microbenchmarks"
        s.files = [(f"{p.parent.parent.name}/{p.parent.name}/{p.name}", p.read_bytes())
                   for p in sorted(root.glob("*/[48]npus_1MB/*.et"))]
        feeder = SHARED / "chakra" / "feeder_tests_trace.tar.gz"
        if feeder.is_file():
            import tarfile
            with tarfile.open(feeder) as tar:
                for m in tar.getmembers():
                    if m.isfile() and m.name.endswith(".et"):
                        s.files.append(("feeder/" + Path(m.name).name,
                                        tar.extractfile(m).read()))  # type: ignore[union-attr]
    return s if s.files else None


def make_input(seeds: Seeds, i: int, seed: int, tmp: Path) -> Path:
    """Write input number ``i`` of ``seeds.parser`` under ``tmp``; returns what to parse."""
    rng = random.Random(f"{seed}:{seeds.parser}:{i}")
    name, data = rng.choice(seeds.files)
    out = tmp / f"{seeds.parser}-{i}"
    out.mkdir()
    structural = rng.random() < 0.5
    p = seeds.parser
    if p in ("topology", "placement", "sweep"):
        import yaml
        if structural:
            text = yaml.safe_dump(mutate_doc(yaml.safe_load(data), rng), sort_keys=False)
            data = text.encode()
        else:
            data = mutate_bytes(data, rng, text=True)
        if p == "sweep":  # the spec names ../../topologies/...: keep that resolvable
            deep = out / "bench" / "sweeps"
            deep.mkdir(parents=True)
            (out / "topologies").symlink_to(ROOT / "topologies")
            (deep / name).write_bytes(data)
            return deep / name
        (out / name).write_bytes(data)
        return out / name
    if p == "native":
        target = out / name
        target.write_bytes(mutate_parquet(data, rng) if structural
                           else mutate_bytes(data, rng, text=False))
        return target
    if p == "kineto":
        if structural:
            doc = json.loads(data)
            events = doc.get("traceEvents", [])
            for _ in range(rng.randint(1, 3)):
                if events:
                    k = rng.randrange(len(events))
                    events[k] = mutate_doc(events[k], rng)
            if rng.random() < 0.2:
                doc = mutate_doc({k: v for k, v in doc.items() if k != "traceEvents"}, rng) | {
                    "traceEvents": events} if isinstance(doc, dict) else doc
            data = json.dumps(doc).encode()
        else:
            data = mutate_bytes(data, rng, text=True)
        base = Path(name).name.removesuffix(".gz")
        if rng.random() < 0.3:
            target = out / (base + ".gz")
            target.write_bytes(mutate_bytes(gzip.compress(data, mtime=0), rng, text=False)
                               if rng.random() < 0.2 else gzip.compress(data, mtime=0))
        else:
            target = out / base
            target.write_bytes(data)
        return target
    # chakra: the seed file's folder (the other ranks as they are), one file mutated
    folder = out / "et"
    folder.mkdir()
    if name.startswith("feeder/"):
        (folder / Path(name).name).write_bytes(mutate_chakra(data, rng, structural))
        return folder
    group = name.rsplit("/", 1)[0]
    for other, other_data in seeds.files:
        if other.rsplit("/", 1)[0] == group:
            (folder / Path(other).name).write_bytes(
                mutate_chakra(other_data, rng, structural) if other == name else other_data)
    return folder


def mutate_chakra(data: bytes, rng: random.Random, structural: bool) -> bytes:
    """Byte-level mutations, or (structural) messages of the file duplicated, dropped,
    swapped or cut."""
    if not structural:
        return mutate_bytes(data, rng, text=False)
    from simcluster.workload.protowire import WireError, iter_delimited
    try:
        msgs = list(iter_delimited(data))
    except WireError:
        return mutate_bytes(data, rng, text=False)
    for _ in range(rng.randint(1, 3)):
        k = rng.randrange(len(msgs))
        op = rng.randrange(4)
        if op == 0:
            msgs.insert(rng.randrange(len(msgs) + 1), msgs[k])
        elif op == 1 and len(msgs) > 1:
            msgs.pop(k)
        elif op == 2:
            msgs[k] = mutate_bytes(msgs[k], rng, text=False)
        else:
            msgs[k] = msgs[k][: rng.randrange(len(msgs[k]) + 1)]
    out = bytearray()
    for m in msgs:
        n = len(m)
        while True:
            b = n & 0x7F
            n >>= 7
            out.append(b | (0x80 if n else 0))
            if not n:
                break
        out += m
    return bytes(out)


def mutate_parquet(data: bytes, rng: random.Random) -> bytes:
    """The workload file rewritten with its metadata or a column replaced."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    table = pq.read_table(io.BytesIO(data))
    meta = dict(table.schema.metadata or {})
    op = rng.randrange(5)
    if op == 0:  # a metadata value replaced
        key = rng.choice(sorted(meta))
        meta[key] = rng.choice([b"null", b"[]", b"1", b"{}", b'"x"', b"\xff\xfe", b"{",
                                b'{"name": 5, "world_size": -1}', b"99", b"2",
                                json.dumps(rng.choice(VALUES)).encode()])
    elif op == 1:  # a metadata key dropped
        meta.pop(rng.choice(sorted(meta)), None)
    elif op == 2:  # a column dropped
        table = table.drop_columns([rng.choice(table.column_names)])
    elif op == 3:  # a column replaced by strings or nulls
        name = rng.choice(table.column_names)
        if rng.random() < 0.5:
            col = pa.array([rng.choice(["x", None, "-1"]) for _ in range(table.num_rows)],
                           pa.string())
        else:
            col = pa.nulls(table.num_rows, table.schema.field(name).type)
        table = table.set_column(table.column_names.index(name), name, col)
    else:  # numbers in a numeric column replaced by extremes
        numeric = [f.name for f in table.schema if pa.types.is_integer(f.type)
                   or pa.types.is_floating(f.type)]
        name = rng.choice(numeric)
        typ = table.schema.field(name).type
        vals = table.column(name).to_pylist()
        extremes = ([-1, 0, 2**31 - 1, -(2**31)] if pa.types.is_integer(typ) else
                    [math.nan, math.inf, -1.0, 1e308])
        for _ in range(rng.randint(1, 5)):
            vals[rng.randrange(len(vals))] = rng.choice(extremes)
        table = table.set_column(table.column_names.index(name), name, pa.array(vals, typ))
    buf = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(meta), buf)
    return buf.getvalue()


# -- the worker -------------------------------------------------------------------------------

def _parse(parser: str, path: Path, ctx: dict[str, Any]) -> None:
    if parser == "topology":
        from simcluster.topology import load_cluster
        load_cluster(path)
    elif parser == "placement":
        from simcluster.placement.bind import load_placement
        load_placement(path, ctx["cluster"], 8)
    elif parser == "sweep":
        from simcluster.sweep.spec import load_sweep
        load_sweep(path, gpus_of=lambda topology: 1024)
    elif parser == "native":
        from simcluster.workload.native import read_workload
        read_workload(path)
    elif parser == "kineto":
        from simcluster.workload.kineto import KinetoOptions, import_kineto
        import_kineto(path, KinetoOptions(workers=1))
    elif parser == "chakra":
        from simcluster.workload.chakra import import_chakra
        import_chakra(path)


def _peak_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def worker(conn: Any) -> None:
    """Parse the paths sent on ``conn``; answer (outcome, detail, peak KiB, seconds)."""
    from simcluster.errors import SimclusterError
    from simcluster.topology import load_cluster
    ctx = {"cluster": load_cluster(ROOT / "topologies" / "dgx-h100.yaml")}
    while True:
        job = conn.recv()
        if job is None:
            return
        parser, path = job
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        except OSError:
            pass
        t = time.perf_counter()
        try:
            _parse(parser, Path(path), ctx)
            outcome, detail = "accepted", ""
        except SimclusterError as exc:
            outcome, detail = "refused", type(exc).__name__
        except BaseException as exc:  # noqa: BLE001 - a crash is what we count
            outcome, detail = "crash", "".join(traceback.format_exception(exc))[-3000:]
        conn.send((outcome, detail, _peak_kib(), time.perf_counter() - t))


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Runner:
    """One worker process, restarted after it is killed."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.proc: Any = None
        self.conn: Any = None

    def start(self) -> None:
        parent, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=worker, args=(child,), daemon=True)
        self.proc.start()
        self.conn = parent

    def run(self, parser: str, path: Path, timeout: float, mem_kib: int
            ) -> tuple[str, str, int, float]:
        if self.proc is None or not self.proc.is_alive():
            self.start()
        self.conn.send((parser, str(path)))
        t0 = time.perf_counter()
        peak = 0
        while True:
            if self.conn.poll(0.05):
                try:
                    return self.conn.recv()
                except EOFError:
                    self.proc = None
                    return ("crash", "worker died", peak, time.perf_counter() - t0)
            rss = _rss_kib(self.proc.pid)
            peak = max(peak, rss)
            elapsed = time.perf_counter() - t0
            if rss > mem_kib or elapsed > timeout or not self.proc.is_alive():
                what = ("memory" if rss > mem_kib else "hang" if elapsed > timeout
                        else "crash")
                self.kill()
                return (what, f"killed after {elapsed:.1f} s at {rss / 1024:.0f} MiB", peak,
                        elapsed)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.join()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.conn.send(None)
            self.proc.join(5)
        self.kill()


@dataclass
class Tally:
    counts: Counter = field(default_factory=Counter)
    peak_kib: int = 0
    slowest: float = 0.0
    slowest_input: int = -1
    crashes: Counter = field(default_factory=Counter)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=10_000, help="inputs per parser (10,000)")
    ap.add_argument("--parsers", default=",".join(PARSERS))
    ap.add_argument("--workers", type=int, default=max(1, min(os.cpu_count() or 1, 8)))
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds before a hang")
    ap.add_argument("--mem-gb", type=float, default=1.0, help="GiB before over memory")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, default=Path(tempfile.gettempdir()) / "simcluster-fuzz")
    ap.add_argument("--write", type=int, metavar="I", help="only write input I of each parser "
                    "to --keep (to reproduce one) and exit")
    args = ap.parse_args(argv)
    if args.write is not None:
        for parser in args.parsers.split(","):
            seeds = load_seeds(parser, args.keep)
            if seeds is not None:
                args.keep.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(args.keep / f"{parser}-{args.write}", ignore_errors=True)
                print(make_input(seeds, args.write, args.seed, args.keep))
        return 0
    mem_kib = int(args.mem_gb * (1 << 20))
    tmp = Path(tempfile.mkdtemp(prefix="simcluster-fuzz-"))
    print(f"fuzz: n={args.n} per parser, seed {args.seed}, {args.workers} worker(s), timeout "
          f"{args.timeout:g} s, memory limit {args.mem_gb:g} GiB; load {os.getloadavg()}")
    ctx = mp.get_context("fork")
    tallies: dict[str, Tally] = {}
    started = time.perf_counter()
    try:
        for parser in args.parsers.split(","):
            seeds = load_seeds(parser, tmp)
            if seeds is None:
                print(f"{parser}: no seed files, left out")
                continue
            tally = tallies[parser] = Tally()
            jobs: queue.Queue[int] = queue.Queue()
            for i in range(args.n):
                jobs.put(i)
            lock = threading.Lock()
            t_parser = time.perf_counter()

            def drain(runner: Runner) -> None:
                while True:
                    try:
                        i = jobs.get_nowait()
                    except queue.Empty:
                        return
                    try:
                        path = make_input(seeds, i, args.seed, tmp)
                    except Exception as exc:  # noqa: BLE001 - a harness bug, not the parser's
                        with lock:
                            tally.counts["harness error"] += 1
                            tally.crashes[f"harness: {type(exc).__name__}: {exc}"[:160]] += 1
                        shutil.rmtree(tmp / f"{parser}-{i}", ignore_errors=True)
                        continue
                    outcome, detail, peak, secs = runner.run(parser, path, args.timeout,
                                                             mem_kib)
                    if peak > mem_kib and outcome in ("accepted", "refused"):
                        outcome = "memory"
                    with lock:
                        tally.counts[outcome] += 1
                        tally.peak_kib = max(tally.peak_kib, peak)
                        if secs > tally.slowest:
                            tally.slowest, tally.slowest_input = secs, i
                        if outcome in ("crash", "hang", "memory"):
                            last = detail.strip().splitlines()[-1] if detail.strip() else outcome
                            tally.crashes[last[:160]] += 1
                            keep = args.keep / f"{parser}-{args.seed}-{i}"
                            shutil.rmtree(keep, ignore_errors=True)
                            shutil.copytree(path.parent if path.is_file() else path, keep,
                                            symlinks=True)
                            (keep / "outcome.txt").write_text(f"{outcome}\n{detail}\n")
                    shutil.rmtree(tmp / f"{parser}-{i}", ignore_errors=True)

            runners = [Runner(ctx) for _ in range(args.workers)]
            threads = [threading.Thread(target=drain, args=(r,)) for r in runners]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for r in runners:
                r.stop()
            c = tally.counts
            print(f"{parser:9s} inputs {sum(c.values()):6,}  accepted {c['accepted']:6,}  "
                  f"refused {c['refused']:6,}  crashes {c['crash']:3}  hangs {c['hang']:3}  "
                  f"over memory {c['memory']:3}  "
                  + (f"harness errors {c['harness error']}  " if c["harness error"] else "")
                  + f"peak RSS {tally.peak_kib / 1024:6.0f} MiB  "
                  f"slowest {tally.slowest:5.2f} s (input {tally.slowest_input})  "
                  f"({time.perf_counter() - t_parser:.0f} s)",
                  flush=True)
            for line, count in tally.crashes.most_common(8):
                print(f"    {count:4} x {line}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    total = Counter()
    for t in tallies.values():
        total.update(t.counts)
    print(f"total: {sum(total.values()):,} inputs, {total['crash']} crashes, {total['hang']} "
          f"hangs, {total['memory']} over memory, in {time.perf_counter() - started:.0f} s; "
          f"load {os.getloadavg()}; kept in {args.keep}")
    return 1 if total["crash"] or total["hang"] or total["memory"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
