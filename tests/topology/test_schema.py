"""Topology YAML: clear errors naming file, line, YAML path and fix; the JSON Schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simcluster.errors import TopologyError
from simcluster.topology import json_schema, load_cluster
from tests.conftest import ROOT

GOOD = """\
name: t
nodes:
  - name: n
    count: 2
    accelerator: H100-SXM5-80GB
    accelerators: 2
    nics:
      count: 1
fabric:
  topology: single-switch
"""


TWO_A100 = """\
name: t
devices:
  - {name: a, kind: accelerator, model: A100}
  - {name: b, kind: accelerator, model: A100}
"""


def _load(tmp_path: Path, text: str) -> object:
    p = tmp_path / "topo.yaml"
    p.write_text(text)
    return load_cluster(p)


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(TopologyError) as err:
        _load(tmp_path, text)
    return str(err.value)


def test_good_file_loads(tmp_path: Path) -> None:
    c = _load(tmp_path, GOOD)
    assert c.accelerators == ("n0/gpu0", "n0/gpu1", "n1/gpu0", "n1/gpu1")


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    msg = _error(tmp_path, "name: t\nnodes:\n  - name: [unclosed\n")
    assert "topo.yaml:" in msg and "YAML syntax error" in msg


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    msg = _error(tmp_path, GOOD.replace("accelerators: 2", "acelerators: 2"))
    assert "topo.yaml:6: nodes[0].acelerators: unknown key; did you mean 'accelerators'?" in msg


@pytest.mark.parametrize("value", ["0", "-5"])
def test_non_positive_bandwidth(tmp_path: Path, value: str) -> None:
    text = GOOD.replace("count: 1\n", f"count: 1\n      bandwidth_GBps: {value}\n")
    msg = _error(tmp_path, text)
    assert "topo.yaml:9: nodes[0].nics.bandwidth_GBps: input should be greater than 0" in msg
    assert "use a positive number" in msg


def test_explicit_link_zero_bandwidth(tmp_path: Path) -> None:
    text = TWO_A100 + "links:\n  - {src: a, dst: b, bandwidth_GBps: 0}\n"
    assert "topo.yaml:6: links[0].bandwidth_GBps: input should be greater than 0" in _error(
        tmp_path, text)


def test_unknown_accelerator_lists_known_models(tmp_path: Path) -> None:
    msg = _error(tmp_path, GOOD.replace("H100-SXM5-80GB", "H900"))
    assert "nodes[0].accelerator: unknown accelerator model 'H900'" in msg
    for model in ("A100-SXM4-80GB", "H100-SXM5-80GB", "H200", "V100-SXM2-32GB"):
        assert model in msg


def test_disconnected_graph(tmp_path: Path) -> None:
    msg = _error(tmp_path, GOOD.replace("fabric:\n  topology: single-switch\n", ""))
    assert "falls apart into 2 unconnected parts" in msg and "fabric:" in msg


def test_one_way_link(tmp_path: Path) -> None:
    text = TWO_A100 + """\
  - {name: s, kind: switch}
links:
  - {src: a, dst: s, bandwidth_GBps: 10}
  - {src: s, dst: b, bandwidth_GBps: 10, duplex: false}
"""
    assert "but not the other way round" in _error(tmp_path, text)


def test_link_to_unknown_device_suggests_a_name(tmp_path: Path) -> None:
    text = GOOD + "links:\n  - {src: n0/gpu0, dst: n1/gpu9, bandwidth_GBps: 10}\n"
    assert "topo.yaml:12: links[0].dst: unknown device 'n1/gpu9'; did you mean 'n1/gpu" in _error(
        tmp_path, text)


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    msg = _error(tmp_path, "name: t\nname: u\nnodes: []\n")
    assert "topo.yaml:2: name: duplicate key (first given on line 1)" in msg


def test_duplicate_device_name(tmp_path: Path) -> None:
    text = GOOD + "devices:\n  - {name: n0/gpu0, kind: switch}\n"
    assert "devices[0]: device name 'n0/gpu0' is already used by nodes[0]" in _error(
        tmp_path, text)


def test_missing_required_key_and_empty_file(tmp_path: Path) -> None:
    assert "name: field required; add this key" in _error(tmp_path, "nodes: []\n")
    assert "the file is empty" in _error(tmp_path, "")
    assert "no accelerators" in _error(tmp_path, "name: t\n")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="file not found"):
        load_cluster(tmp_path / "nope.yaml")


def test_yaml_is_never_evaluated(tmp_path: Path) -> None:
    msg = _error(tmp_path, "name: !!python/object/apply:os.system ['echo hi']\n")
    assert "YAML syntax error" in msg


def test_leaf_spine_needs_its_size(tmp_path: Path) -> None:
    msg = _error(tmp_path, GOOD.replace("single-switch", "leaf-spine"))
    assert "fabric: a leaf-spine fabric needs nodes_per_leaf" in msg


def test_json_schema_is_valid_json_and_covers_the_keys() -> None:
    schema = json.loads(json_schema())
    assert schema["title"] == "simcluster topology"
    assert {"name", "nodes", "fabric", "devices", "links", "network"} <= set(schema["properties"])
    assert json_schema() == json_schema()


@pytest.mark.parametrize("path", sorted((ROOT / "topologies").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_bundled_topologies_load(path: Path) -> None:
    c = load_cluster(path)
    assert c.accelerators


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True),
                     st.text(max_size=8))
_keys = st.sampled_from(["name", "nodes", "count", "accelerator", "fabric", "links", "src",
                         "dst", "bandwidth_GBps", "devices", "kind", "topology", "nics", "x"])
_yamlish = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=4)), max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.dictionaries(_keys, _yamlish, max_size=5))
def test_any_yaml_mapping_loads_or_fails_cleanly(tmp_path: Path, data: dict) -> None:
    p = tmp_path / "fuzz.yaml"
    p.write_text(yaml.safe_dump(data))
    try:
        load_cluster(p)
    except TopologyError as exc:
        assert str(exc).startswith(str(p))


def test_json_schema_accepts_every_bundled_topology_and_rejects_a_bad_one() -> None:
    """An editor pointed at `simcluster topology schema` must not underline good files."""
    import json

    import yaml

    jsonschema = pytest.importorskip("jsonschema")
    from simcluster.topology import json_schema
    from tests.conftest import ROOT

    validator = jsonschema.Draft202012Validator(json.loads(json_schema()))
    files = sorted((ROOT / "topologies").glob("*.yaml"))
    assert len(files) >= 10
    for path in files:
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
        assert errors == [], f"{path.name}: {errors}"
    bad = {"name": "x", "nodes": [{"count": 2}]}  # neither accelerator nor preset
    assert list(validator.iter_errors(bad))


@pytest.mark.parametrize("text,expected", [
    ("nodes:\n  - {accelerator: H100, count: 1000000000}", "nodes[0].count: input should be less"),
    ("nodes:\n  - {accelerator: H100, accelerators: 10000000}", "nodes[0].accelerators"),
    ("nodes:\n  - {accelerator: H100, count: 2}\nfabric: {topology: leaf-spine, spines: "
     "100000000, nodes_per_leaf: 1}", "fabric.spines"),
    ("nodes:\n  - {preset: {}}", "nodes[0].preset: input should be 'dgx-a100'"),
    ("nodes:\n  - {accelerator: H100, nvlink: {bandwidth_GBps: .inf}}", "finite number"),
    ("nodes:\n  - {accelerator: H100, nvlink: {bandwidth_GBps: 1e308}}", "less than or equal"),
    ("nodes:\n  - {accelerator: H100, count: 20000}\nfabric: {topology: single-switch}",
     "160,000 accelerators is more than the limit of 131,072"),
])
def test_oversized_and_non_finite_topologies_are_refused_before_building(
        tmp_path, text: str, expected: str) -> None:
    import time

    from simcluster.topology import load_cluster

    path = tmp_path / "t.yaml"
    path.write_text("name: x\n" + text + "\n")
    t0 = time.perf_counter()
    with pytest.raises(TopologyError, match=re.escape(expected)):
        load_cluster(path)
    assert time.perf_counter() - t0 < 10.0


def test_the_accelerator_limit_can_be_raised(tmp_path, monkeypatch) -> None:
    from simcluster.topology.schema import ENV_MAX_ACCELERATORS, max_accelerators

    monkeypatch.setenv(ENV_MAX_ACCELERATORS, "8")
    assert max_accelerators() == 8
    from simcluster.topology import load_cluster

    path = tmp_path / "t.yaml"
    path.write_text("name: x\nnodes:\n  - {accelerator: H100, count: 2}\n"
                    "fabric: {topology: single-switch}\n")
    with pytest.raises(TopologyError, match="16 accelerators is more than the limit of 8"):
        load_cluster(path)
