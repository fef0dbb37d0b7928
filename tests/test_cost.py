"""The cost model, by hand."""

from __future__ import annotations

import pytest

from simcluster.cost import DEFAULT_USD_PER_HOUR, costs, price_per_hour
from simcluster.topology import load_cluster
from tests.conftest import ROOT, cluster_from


def test_costs_by_hand() -> None:
    # 16 accelerators at $2/h = $32/h; a 0.9 s step costs 32 * 0.9 / 3600 = $0.008; with
    # 1,048,576 tokens per step: $0.00763 per 1M tokens, 1,165,084 tokens/s.
    c = costs(900_000.0, 32.0, 1_048_576)
    assert c.usd_per_step == pytest.approx(0.008)
    assert c.usd_per_1m_tokens == pytest.approx(0.008 / 1_048_576 * 1e6)
    assert c.tokens_per_s == pytest.approx(1_048_576 / 0.9)
    plan = c.training(1e12, 900_000.0)
    assert plan["hours"] == pytest.approx(1e12 / 1_048_576 * 0.9 / 3600)
    assert plan["usd"] == pytest.approx(1e12 / 1_048_576 * 0.008)
    assert costs(900_000.0, None, 1000).usd_per_step is None
    assert costs(900_000.0, 32.0, None).training(1e9, 900_000.0)["hours"] is None


def test_price_precedence_and_unknown_models() -> None:
    h100 = load_cluster(ROOT / "topologies" / "h100-2node.yaml")
    devs = h100.accelerators
    assert price_per_hour(h100, devs) == pytest.approx(16 * DEFAULT_USD_PER_HOUR["H100-SXM5-80GB"])
    assert price_per_hour(h100, devs[:4], override=3.0) == pytest.approx(12.0)
    priced = cluster_from({"name": "p", "nodes": [{"accelerator": "A100-SXM4-80GB",
                                                    "accelerators": 2, "fabric": "pcie"}],
                           "cost": {"usd_per_accelerator_hour": {"A100-SXM4-80GB": 1.5}}})
    assert price_per_hour(priced, priced.accelerators) == pytest.approx(3.0)
    unpriced = cluster_from({"name": "u", "nodes": [{"accelerator": "A100-SXM4-80GB",
                                                      "accelerators": 2, "fabric": "pcie"}]})
    assert price_per_hour(unpriced, unpriced.accelerators) is None
