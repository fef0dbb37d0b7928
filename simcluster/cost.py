"""What a step, a million tokens and a training run cost, from a price per accelerator-hour.

Prices come, in order of precedence, from the caller (``--price``, a sweep spec), the
topology's ``cost:`` section (one price, or one per accelerator model), or the defaults below.
A model with no price anywhere leaves the costs unknown (None), never guessed.

Default prices (USD per accelerator-hour): AWS EC2 Capacity Blocks for ML, US East, the
published "effective accelerator hourly rate" for reservations made before 2025-01-01
(aws.amazon.com/ec2/capacityblocks/pricing): p5.48xlarge (8 x H100) 4.916, p5e (8 x H200)
5.408, p4d.24xlarge (8 x A100 40GB) 1.844. On-demand list prices are higher and change often:
set your own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simcluster.topology.cluster import Cluster

DEFAULT_USD_PER_HOUR: dict[str, float] = {
    "H100-SXM5-80GB": 4.916,
    "H200": 5.408,
    "A100-SXM4-40GB": 1.844,
}
PRICE_SOURCE = ("AWS EC2 Capacity Blocks for ML, US East, effective accelerator hourly rate, "
                "reservations before 2025-01-01")


@dataclass(frozen=True)
class Costs:
    """Costs of a run (USD; None where a price or token count is unknown)."""

    usd_per_hour: float | None
    usd_per_step: float | None
    usd_per_1m_tokens: float | None
    tokens_per_step: float | None
    tokens_per_s: float | None

    def training(self, tokens: float, step_time_us: float) -> dict[str, float | None]:
        """Time (h) and cost (USD) to train on ``tokens`` tokens at this rate."""
        if not self.tokens_per_step:
            return {"tokens": tokens, "hours": None, "usd": None}
        steps = tokens / self.tokens_per_step
        hours = steps * step_time_us / 3.6e9
        return {"tokens": tokens, "hours": hours,
                "usd": None if self.usd_per_step is None else steps * self.usd_per_step}

    def as_dict(self) -> dict[str, Any]:
        return {"usd_per_hour": self.usd_per_hour, "usd_per_step": self.usd_per_step,
                "usd_per_1m_tokens": self.usd_per_1m_tokens,
                "tokens_per_step": self.tokens_per_step, "tokens_per_s": self.tokens_per_s,
                "price_source": PRICE_SOURCE}


def price_per_hour(cluster: Cluster, devices: tuple[str, ...],
                   override: float | dict[str, float] | None = None) -> float | None:
    """Summed USD/hour of the accelerators the ranks run on, or None if one has no price."""
    topo = cluster.cost_usd_per_hour
    total = 0.0
    for dev in devices:
        model = cluster.specs[dev].model
        price = _pick(override, model)
        if price is None:
            price = _pick(topo, model)
        if price is None:
            price = DEFAULT_USD_PER_HOUR.get(model)
        if price is None:
            return None
        total += price
    return total


def _pick(source: float | dict[str, float] | None, model: str) -> float | None:
    if source is None:
        return None
    if isinstance(source, dict):
        return source.get(model)
    return float(source)


def costs(step_time_us: float, usd_per_hour: float | None,
          tokens_per_step: float | None) -> Costs:
    """Costs of a step that takes ``step_time_us`` on accelerators costing ``usd_per_hour``
    together, processing ``tokens_per_step`` tokens."""
    per_step = None if usd_per_hour is None else usd_per_hour * step_time_us / 3.6e9
    per_m = (per_step / tokens_per_step * 1e6 if per_step is not None and tokens_per_step
             else None)
    tps = tokens_per_step / (step_time_us / 1e6) if tokens_per_step and step_time_us > 0 else None
    return Costs(usd_per_hour=usd_per_hour, usd_per_step=per_step, usd_per_1m_tokens=per_m,
                 tokens_per_step=tokens_per_step, tokens_per_s=tps)
