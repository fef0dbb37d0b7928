"""RCCL's tuning constants and its MSCCL all-reduce windows (AMD Instinct platforms).

RCCL (ROCm's fork of NCCL) keeps NCCL's cost model (``time = latency + size / bandwidth``)
but replaces its tables. All figures below are facts from RCCL's source at ROCm/rccl commit
``0cbce2a7571c907554199fad7e905f16ec0a565c`` (2024-10-24), rewritten here:

- ``src/graph/tuning.cc``: ``baseLat`` {LL, LL128, Simple} = {12, 12, 17} us for Tree, Ring
  and CollNet (NCCL 2.18: Ring {6.6, 14, 8.4}); per-architecture ``tuningModel`` tables of
  per-step latencies (``hwLat``, rows NVLink/PCI/NET, where RCCL counts Infinity Fabric as
  NVLink) and bandwidth ratios (``bwRatio``, one row for <= 2 nodes and one for more). RCCL
  applies ``bwRatio`` instead of NCCL's protocol factors (NCCL's ring LL 1/4, LL128 0.92, tree
  0.92 refinements sit in the ``#else`` branch that HIP builds skip).
- ``src/graph/rome_models.cc``: the 8 x MI300X platform models (``rome_model_79``: 8 GPUs,
  7 links each, fully connected; also ``_81`` and ``_84``) set ``tuning=5`` and
  ``mscclEnabled=1``. Other platforms keep ``tuning_model_0`` unless a model names another.
- LL128 is off: ``tuning.cc`` enables it by default only on gfx90a with a platform model
  that sets ``ll128Enabled``; ``enqueue.cc`` (``topoGetAlgoInfo``) skips it unless the
  topology is all-XGMI, and ``tuning_model_5`` gives it bandwidth 0.
- ``tools/msccl-algorithms/allreduce-allpairs-8n-*-op.xml``: with MSCCL on, an out-of-place
  all-reduce on 8 GPUs of one server runs the *all-pairs* algorithm instead of the tuner's
  choice: protocol LL from 0 to 524,287 bytes (4 then 8 channels), Simple from 524,288 to
  16,777,216 bytes. (The in-place windows differ slightly; nccl-tests logs compare
  out-of-place.)

What this module adds to them: the MSCCL all-pairs windows use the ring rows for latency
(two steps) and base latency (MSCCL bypasses the tuner, which has no row for it), and LL at
half the link bandwidth, the data fraction of an LL line (each 8-byte store carries 4 bytes
of data and a 4-byte flag; ``src/device/prims_ll.h``). Not modelled: the size-dependent
correction factors (``treeCorrectionFactor``, ``ringCorrectionFactor``) that RCCL's tuner
multiplies into its estimate across nodes, MSCCL++ (all-reduce <= 1 MiB on gfx94 builds
with it), and the gfx90a platform models (``tuning=1..4``).

Units: microseconds; bandwidth ratios are dimensionless.
"""

from __future__ import annotations

from simcluster.sim.protocols import Tables

# Base latency of a call (us): tuning.cc baseLat, rows Tree, Ring, CollNet Direct and Chain.
_BASE = {"LL": 12.0, "LL128": 12.0, "Simple": 17.0}
BASE_LATENCY_US: dict[str, dict[str, float]] = {
    t: dict(_BASE) for t in ("ring", "tree", "collnet_direct", "collnet_chain", "msccl")}


def _rows(tree: tuple[float, float, float], ring: tuple[float, float, float],
          direct: float, chain: float) -> dict[str, dict[str, float]]:
    """One hardware class of a tuning model: Tree and Ring (LL, LL128, Simple), CollNet
    Direct and Chain (Simple)."""
    proto = ("LL", "LL128", "Simple")
    return {"tree": dict(zip(proto, tree)), "ring": dict(zip(proto, ring)),
            "msccl": dict(zip(proto, ring)), "collnet_direct": {"Simple": direct},
            "collnet_chain": {"Simple": chain}}


def _steps(nvlink: dict[str, dict[str, float]], pcie: dict[str, dict[str, float]],
           net: dict[str, dict[str, float]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per-step latency tables keyed table -> hardware class -> protocol."""
    return {t: {"nvlink": nvlink[t], "pcie": pcie[t], "net": net[t]} for t in nvlink}


def _ratios(tree: tuple[float, float, float], ring: tuple[float, float, float]
            ) -> dict[str, dict[str, float]]:
    """One bwRatio row (Tree and Ring; CollNet 1.0; MSCCL all-pairs: LL's data fraction)."""
    proto = ("LL", "LL128", "Simple")
    return {"tree": dict(zip(proto, tree)), "ring": dict(zip(proto, ring)),
            "collnet_direct": {"Simple": 1.0}, "collnet_chain": {"Simple": 1.0},
            "msccl": {"LL": 0.5, "LL128": 0.0, "Simple": 1.0}}


_PCI = _rows((2.2, 2.2, 5.7), (2.2, 2.2, 5.7), 5.7, 5.7)

# tuning_model_0: the default.
MODEL_0 = Tables(
    base=BASE_LATENCY_US,
    step=_steps(_rows((0.8, 1.4, 2.5), (0.8, 2.2, 3.6), 0.8, 1.4), _PCI,
                _rows((11.8, 18.2, 20.8), (9.5, 19.8, 15.1), 11.8, 18.2)),
    bandwidth={1: _ratios((0.04, 0.22, 0.91), (0.04, 0.34, 1.00)),
               3: _ratios((0.04, 0.22, 0.95), (0.04, 0.34, 1.00))},
)

# tuning_model_5: the 8 x MI300X platforms (rome_model_79, _81, _84).
MODEL_5 = Tables(
    base=BASE_LATENCY_US,
    step=_steps(_rows((0.9, 0.0, 2.3), (0.8, 0.0, 2.1), 0.9, 0.0), _PCI,
                _rows((10.5, 0.0, 25.0), (9.5, 0.0, 320.0), 10.5, 0.0)),
    bandwidth={1: _ratios((0.06, 0.00, 0.11), (0.08, 0.00, 1.00)),
               3: _ratios((0.06, 0.00, 0.59), (0.08, 0.00, 1.00))},
)

# Accelerator families on gfx942 (CDNA 3), where the 8-GPU platform models apply.
GFX942_FAMILIES: frozenset[str] = frozenset({"mi300x", "mi300a", "mi325x"})

# MSCCL's out-of-place all-reduce windows on 8 GPUs (inclusive bounds, bytes): protocol.
MSCCL_ALLREDUCE_8: tuple[tuple[int, int, str], ...] = (
    (0, 524_287, "LL"),
    (524_288, 16_777_216, "Simple"),
)
