"""bench/fit_stack.py: the candidate efficiencies reach the simulated row, and slower memory
kernels make the step slower. No fitted value is checked here (docs/validation.md)."""

from __future__ import annotations

import dataclasses

from simcluster.topology.schema import ComputeParams
from simcluster.workload.generate.frameworks import compute_entry
from tests.conftest import bench_module


def test_entry_is_a_valid_compute_entry_capped_at_one() -> None:
    fs = bench_module("fit_stack")
    entry = fs.entry_of(1.3, 0.31)
    assert entry == {"memory_efficiency": 1.0,
                     "families": {"flash1": {"gemm_efficiency": 0.31}}}
    ComputeParams.model_validate(entry)


def test_candidate_entry_replaces_the_profiles_and_moves_the_step() -> None:
    fs = bench_module("fit_stack")
    rows = fs.calibration_rows("H100")
    assert len(rows) == 59 and all(m.split == "calibrate" for m in rows)
    m = next(r for r in rows if r.model == "MPT-760m")
    small = dataclasses.replace(m, params={**m.params, "layers": 2,
                                           "global_batch": m.params["micro_batch"] * m.dp})
    profile = fs.vp.predict(small, fs.MAX_OPS, 0).predicted_s  # the profile's own entry
    same = fs.step_time(small, compute_entry("llm-foundry-2023", "H100"))
    assert same == profile
    fast = fs.step_time(small, fs.entry_of(0.866, 0.31))  # STREAM bandwidth
    slow = fs.step_time(small, fs.entry_of(0.2, 0.31))
    assert fast < profile < slow
    assert fs.step_time(small, fs.entry_of(0.39, 0.2)) > profile  # slower attention
    assert fs.calibration_rows("B200") == []  # no llm-foundry rows: nothing to fit
