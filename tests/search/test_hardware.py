"""The co-search's hardware file: its cost model, budget and checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from simcluster.search.hardware import (
    HardwareError,
    HardwareSpec,
    LinearModel,
    load_hardware,
    price,
    variants,
)

BASE = {"peak_tflops": 100.0, "hbm_GiB": 40.0, "hbm_GBps": 1000.0, "scale_up_GBps": 400.0,
        "scale_out_GBps": 25.0}


def _spec(**extra: object) -> HardwareSpec:
    return HardwareSpec.model_validate({
        "space": {"peak_tflops": [200, 100], "hbm_GiB": [40, 80]},
        "cost": {"base": 1.0, "per_unit": {"peak_tflops": 0.01, "hbm_GiB": 0.05}}, **extra})


def test_linear_cost_model() -> None:
    model = LinearModel(base=1.0, per_unit={"peak_tflops": 0.01, "scale_out_GBps": 0.1})
    # 1 + 0.01 x 200 + 0.1 x 25 (scale-out not varied: its value in the topology)
    assert model.of({**BASE, "peak_tflops": 200.0}) == pytest.approx(5.5)
    assert price(_spec(), {"peak_tflops": 200.0, "hbm_GiB": 80.0}, BASE) == (
        pytest.approx(7.0), None)


def test_budget_leaves_out_what_costs_or_draws_too_much() -> None:
    # USD/h: (100, 40) 4.0, (100, 80) 6.0, (200, 40) 5.0, (200, 80) 7.0.
    kept, over = variants(_spec(budget={"usd_per_hour": 5.0}), BASE)
    assert [v.values for v in kept] == [{"peak_tflops": 100.0, "hbm_GiB": 40.0},
                                        {"peak_tflops": 200.0, "hbm_GiB": 40.0}]
    assert over == 2
    assert kept[1].point() == {"hw.peak_tflops": 200.0, "hw.hbm_GiB": 40.0, "price": 5.0}
    # W: 100 + 1 x peak: 200 or 300.
    power = {"base": 100.0, "per_unit": {"peak_tflops": 1.0}}
    kept, over = variants(_spec(power=power, budget={"watts": 250.0}), BASE)
    assert [(v.values["peak_tflops"], v.watts) for v in kept] == [(100.0, 200.0),
                                                                   (100.0, 200.0)]
    assert over == 2
    with pytest.raises(HardwareError, match="none of the 4 .* cheapest costs 4 USD/h"):
        variants(_spec(budget={"usd_per_hour": 3.0}), BASE)


def test_a_range_is_evenly_spaced() -> None:
    spec = HardwareSpec.model_validate({
        "space": {"hbm_GBps": {"from": 1000, "to": 2000, "steps": 3}}, "cost": {"base": 1}})
    assert spec.values() == {"hbm_GBps": (1000.0, 1500.0, 2000.0)}


@pytest.mark.parametrize(("text", "match"), [
    ("space: {flops: [1]}\ncost: {base: 1}\n", r"hw\.yaml:1: space\.flops"),
    ("space: {hbm_GiB: []}\ncost: {base: 1}\n", "give one or more positive values"),
    ("space: {hbm_GiB: [80]}\ncost: {base: 1, per_unit: {hbm_GiB: -1}}\n",
     "a price must be 0 or more"),
    ("space: {hbm_GiB: [80]}\ncost: {base: 1}\nbudget: {watts: 700}\n",
     "budget.watts needs a power: section"),
    ("space: {hbm_GiB: [80]}\n", "cost"),
])
def test_bad_hardware_files_name_the_place(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "hw.yaml"
    path.write_text(text)
    with pytest.raises(HardwareError, match=match):
        load_hardware(path)
