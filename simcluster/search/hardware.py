"""The hardware half of a co-search: which accelerator parameters vary, what they cost, and
the budget.

A hardware file (YAML, ``search --hardware FILE``)::

    space:                       # values each parameter may take; the rest stay as built
      peak_tflops: [989.5, 1979] # dense BF16 TFLOP/s (every dtype scales by the same ratio)
      hbm_GiB: [80, 141]
      hbm_GBps: {from: 3350, to: 4800, steps: 2}   # or a linear range
      scale_up_GBps: [450, 900]  # NVLink per GPU per direction
      scale_out_GBps: [50, 100]  # NIC bandwidth per GPU per direction
      scale_up_size: [8, 16, 32] # GPUs per scale-up (NVLink) domain: the topology is
                                 # rebuilt with servers of that many (same GPUs in all)
    cost:                        # USD per accelerator-hour = base + sum(per_unit x value)
      base: 1.0
      per_unit: {peak_tflops: 0.002, hbm_GiB: 0.01, hbm_GBps: 0.0002}
    power:                       # optional: W per accelerator, the same form
      base: 300
      per_unit: {peak_tflops: 0.3}
    budget: {usd_per_hour: 6.0, watts: 1000}     # per accelerator; optional

The cost model is linear in each parameter: a bill of materials amortised per hour, where a
part's price grows with its capacity or speed. It is simple to fit to quotes, and its terms
say what each unit costs, which is what "the parameter that limits a point" compares against.
A parameter that is not varied enters the cost at its value in the topology. The domain
size is priced per GPU of the domain (a GPU of a 72-GPU NVLink domain costs more than one
of an 8-GPU server: the switch trays and cables); its values must divide the topology's
GPUs (``topology/transform.with_scale_up_size``), and tensor parallelism may then span the
domain (``--tp`` values above 8 apply only to variants with domains that large).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from simcluster.search.driver import SearchError
from simcluster.topology.transform import HARDWARE_PARAMS
from simcluster.yamlfile import read_yaml, validate

# The parameters a file may name: those with_hardware sets (one list, in transform.py).
Param = Literal[HARDWARE_PARAMS]  # type: ignore[valid-type]


class HardwareError(SearchError):
    """A hardware file or co-search space that cannot be used."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Range(_Strict):
    """``steps`` evenly spaced values from ``from`` to ``to`` (both included; rounded to 1e-9
    so that the sweep points' values read as written)."""

    start: float = Field(alias="from", gt=0)
    to: float = Field(gt=0)
    steps: int = Field(ge=2, le=64)

    def values(self) -> tuple[float, ...]:
        step = (self.to - self.start) / (self.steps - 1)
        return tuple(round(self.start + i * step, 9) for i in range(self.steps))


class LinearModel(_Strict):
    """``base + sum(per_unit[p] * value[p])`` per accelerator (USD/h, or W for power)."""

    base: float = Field(ge=0)
    per_unit: dict[Param, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _non_negative(self) -> LinearModel:
        for name, price in self.per_unit.items():
            if price < 0:
                raise ValueError(f"per_unit.{name} = {price}: a price must be 0 or more")
        return self

    def of(self, values: dict[str, float]) -> float:
        """The model at ``values`` (every priced parameter must be there).

        Example:
            >>> LinearModel(base=1.0, per_unit={"hbm_GiB": 0.01}).of({"hbm_GiB": 80.0})
            1.8
        """
        return self.base + sum(p * values[k] for k, p in self.per_unit.items())


class Budget(_Strict):
    """Most each accelerator may cost (USD/h) or draw (W)."""

    usd_per_hour: float | None = Field(default=None, gt=0)
    watts: float | None = Field(default=None, gt=0)


class HardwareSpec(_Strict):
    """A hardware file (module docstring)."""

    space: dict[Param, list[float] | Range]
    cost: LinearModel
    power: LinearModel | None = None
    budget: Budget = Field(default_factory=Budget)

    @model_validator(mode="after")
    def _shape(self) -> HardwareSpec:
        if not self.space:
            raise ValueError("space: give at least one parameter to vary, e.g. "
                             "peak_tflops: [989.5, 1979]")
        for name, vals in self.space.items():
            if isinstance(vals, list) and (not vals or any(v <= 0 for v in vals)):
                raise ValueError(f"space.{name}: give one or more positive values")
        if self.budget.watts is not None and self.power is None:
            raise ValueError("budget.watts needs a power: section (base and per_unit W)")
        return self

    def values(self) -> dict[str, tuple[float, ...]]:
        """Each varied parameter's values, sorted, without repeats."""
        return {k: tuple(sorted(set(v.values() if isinstance(v, Range) else v)))
                for k, v in self.space.items()}


@dataclass(frozen=True)
class Variant:
    """One hardware point: the varied parameters' values, and what an accelerator of it
    costs (USD/h) and draws (W; None without a power model)."""

    values: dict[str, float]
    usd_per_hour: float
    watts: float | None

    def point(self) -> dict[str, float]:
        """Its sweep point values (``hw.PARAM`` axes and the ``price`` they make)."""
        return {**{f"hw.{k}": v for k, v in self.values.items()},
                "price": round(self.usd_per_hour, 9)}


def load_hardware(path: str | Path) -> HardwareSpec:
    """Read and check a hardware file.

    Raises:
        HardwareError: missing file, bad YAML, or a value out of place (with line and path).
    """
    doc = read_yaml(path, HardwareError)
    spec = validate(doc, HardwareSpec, HardwareError)
    assert isinstance(spec, HardwareSpec)
    return spec


def price(spec: HardwareSpec, values: dict[str, float], base: dict[str, float]
          ) -> tuple[float, float | None]:
    """USD/h and W (None without a power model) of an accelerator with ``values`` over the
    topology's ``base`` hardware (:func:`~simcluster.topology.transform.hardware_of`)."""
    full = {**base, **values}
    return spec.cost.of(full), spec.power.of(full) if spec.power else None


def variants(spec: HardwareSpec, base: dict[str, float]) -> tuple[list[Variant], int]:
    """Every combination of the space within the budget, in a deterministic order, and how
    many combinations the budget left out.

    Raises:
        HardwareError: nothing is within the budget.
    """
    axes = spec.values()
    out, over = [], 0
    for combo in itertools.product(*axes.values()):
        values = dict(zip(axes, combo))
        usd, watts = price(spec, values, base)
        b = spec.budget
        if ((b.usd_per_hour is not None and usd > b.usd_per_hour)
                or (b.watts is not None and watts is not None and watts > b.watts)):
            over += 1
            continue
        out.append(Variant(values, usd, watts))
    if not out:
        cheapest = min(price(spec, dict(zip(axes, c)), base)[0]
                       for c in itertools.product(*axes.values()))
        raise HardwareError(f"none of the {over} hardware combinations is within the budget "
                            f"(the cheapest costs {cheapest:.4g} USD/h per accelerator); "
                            "raise budget: or lower the space's values.")
    return out, over
