"""Where a published row's predicted step goes, by kind of op: rank 0's op time per layer
and micro-batch (docs/validation.md, "Mixture-of-experts rows").

Each row of bench/data/published/training_steps.csv is mapped as validate_published.py maps
it, generated with two micro-batches per replica (no pipeline filling counted twice) and
replayed; every op of rank 0 counts under the first kind whose pattern matches its name, and
its duration (end - start, overlap included: a sum of op times, not of the critical path) is
divided by the micro-batches and the layers of rank 0's stage. The once-a-step kinds (the
optimizer, the data-parallel gradients and parameters) are spread over the row's own
micro-batches, as in its measured step.

    python bench/decompose_moe.py 84 93 [--markdown]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pyarrow.compute as pc

import simcluster as sc

sys.path.insert(0, str(Path(__file__).resolve().parent))
import validate_published as vp  # noqa: E402

MICRO_BATCHES = 2
# kind -> pattern on the op name; the first match wins
KINDS: dict[str, str] = {
    "expert GEMMs": r"\.experts\.fc[12]$",
    "expert activation": r"\.experts\.act$",
    "SequentialMLP cat": r"\.experts\.cat$",
    "fp8 casts (experts)": r"\.experts\.fc[12]_cast$",
    "fp8 casts (attention, dense MLP)": r"_cast$",
    "router, top-k, aux loss": r"\.router",
    "permute, unpermute": r"\.(un)?permute$",
    "regroup by expert (sort_chunks)": r"sort_chunks$",
    "expert-TP flat-buffer copies": r"flatten$",
    "EP all-to-all": r"\.ep_(dispatch|combine)$",
    "expert-TP all-gather, reduce-scatter": r"\.etp_(ag|rs)$",
    "attention core": r"\.attn",
    "QKV, projection GEMMs": r"\.(qkv|proj)(\.|$)",
    "TP/SP collectives": r"\.(ag_|tp_|rs_)|^(tp|ag)_",
    "CP ring": r"\.cp_",
    "LM head, loss, embedding": r"^(logits|loss|embed)",
    "data-parallel gradients, parameters": r"^e?dp\.",
    "optimizer": r"^optimizer",
}
PER_STEP = frozenset({"data-parallel gradients, parameters", "optimizer"})


def kind_of(name: str) -> str:
    """The kind of an op name (``other`` when no pattern matches).

    Example:
        >>> [kind_of(n) for n in ("L3.fwd.experts.fc1", "L3.bwd.experts.fc2_cast",
        ...  "L3.fwd.qkv_cast", "L3.fwd.etp_ag", "L3.fwd.etp_ag_unflatten", "edp.grad.c0.b1")]
        ['expert GEMMs', 'fp8 casts (experts)', 'fp8 casts (attention, dense MLP)', \
'expert-TP all-gather, reduce-scatter', 'expert-TP flat-buffer copies', \
'data-parallel gradients, parameters']
    """
    return next((k for k, pat in KINDS.items() if re.search(pat, name)), "other")


def decompose(row_id: str) -> tuple[str, dict[str, float]]:
    """(label, kind -> ms per layer and micro-batch on rank 0) of one CSV row."""
    row = {r["row_id"]: r for r in vp.read_csv()}[row_id]
    m = vp.map_row(row)
    if not isinstance(m, vp.Mapped):
        raise SystemExit(f"row {row_id} is skipped: {m.reason}")
    params = dict(m.params, global_batch=MICRO_BATCHES * m.params["micro_batch"] * m.dp)
    wl = sc.generate("transformer", **params)
    t = sc.replay(wl, vp.cluster_for(m.gpu, m.gpus, m.nics)).run.timeline
    t = t.filter(pc.equal(t["rank"], 0))
    layers = m.params["layers"] // m.pp
    out = dict.fromkeys([*KINDS, "other"], 0.0)
    dur = t["end_us"].to_numpy() - t["start_us"].to_numpy()
    for name, d in zip(t["name"].to_pylist(), dur):
        kind = kind_of(name)
        per = m.micro_batches if kind in PER_STEP else MICRO_BATCHES
        out[kind] += float(d) / 1e3 / per / layers
    label = f"row {row_id} ({m.gpus} GPUs, {m.params['dtype']}, EP {m.params['ep']})"
    return label, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rows", nargs="+", help="row_id values")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    cols = [decompose(r) for r in args.rows]
    sep = " | " if args.markdown else "  "
    print(("| " if args.markdown else "") + f"{'ms per layer and micro-batch':40s}" + sep
          + sep.join(f"{label:>24s}" for label, _ in cols) + (" |" if args.markdown else ""))
    if args.markdown:
        print("|---|" + "---:|" * len(cols))
    for kind in [*KINDS, "other"]:
        vals = [c[kind] for _, c in cols]
        if not any(vals):
            continue
        print(("| " if args.markdown else "") + f"{kind:40s}" + sep
              + sep.join(f"{v:24.3f}" for v in vals) + (" |" if args.markdown else ""))
    total = [sum(c.values()) for _, c in cols]
    print(("| " if args.markdown else "") + f"{'sum':40s}" + sep
          + sep.join(f"{v:24.3f}" for v in total) + (" |" if args.markdown else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
