"""YAML inputs are bounded before anything is built: the alias bomb, recursive aliases, deep
nesting and oversize files are refused by every loader with a message naming the limit."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simcluster.errors import PlacementError, SimclusterError, TopologyError
from simcluster.placement.bind import load_placement
from simcluster.sweep.spec import SweepError, load_sweep
from simcluster.topology import load_cluster
from simcluster.yamlfile import YamlLimits, read_yaml
from tests.bounded import run_cli
from tests.conftest import ROOT, star


def billion_laughs(levels: int = 10) -> str:
    """The classic alias bomb: each level lists the previous one ten times (10**levels
    strings once expanded), about 600 bytes for 10 levels."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for k in range(1, levels):
        lines.append(f"a{k}: &a{k} [" + ",".join([f"*a{k - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


@pytest.fixture()
def bomb(tmp_path: Path) -> Path:
    p = tmp_path / "bomb.yaml"
    p.write_text(billion_laughs())
    assert 500 < p.stat().st_size < 700
    return p


@pytest.mark.parametrize("load,error", [
    (lambda p: load_cluster(p), TopologyError),
    (lambda p: load_placement(p, star(2), 2), PlacementError),
    (lambda p: load_sweep(p), SweepError),
])
def test_alias_bomb_refused_by_every_loader(bomb: Path, load, error) -> None:
    with pytest.raises(error) as exc:
        load(bomb)
    msg = str(exc.value)
    assert str(bomb) in msg and "200,000 values" in msg and "SIMCLUSTER_YAML_MAX_NODES" in msg


def test_alias_bomb_cli_exit_2_bounded(bomb: Path) -> None:
    """Through the command line: exit 2 with one paragraph, well under 500 MB (the child is
    killed after 10 s, so a hang fails the test)."""
    m = run_cli("topology", "check", str(bomb), timeout_s=10)
    assert m.code == 2
    assert m.stderr.startswith(f"error: {bomb}:") and "Traceback" not in m.stderr
    assert m.peak_bytes < 300e6


def test_recursive_alias(tmp_path: Path) -> None:
    p = tmp_path / "r.yaml"
    p.write_text("name: t\nnodes: &n [*n]\n")
    with pytest.raises(TopologyError, match=r"r\.yaml:2: an alias refers to a node that "
                                            r"contains it"):
        load_cluster(p)


@pytest.mark.parametrize("depth", [65, 300, 100_000])
def test_deep_nesting(tmp_path: Path, depth: int) -> None:
    p = tmp_path / "d.yaml"
    p.write_text("name: " + "[" * depth + "]" * depth + "\n")
    with pytest.raises(TopologyError, match=r"d\.yaml(:1)?: nested deeper than 64 levels"):
        load_cluster(p)


def test_oversize_file_is_refused_before_parsing(tmp_path: Path) -> None:
    p = tmp_path / "big.yaml"
    p.write_text("name: t\n" + "# padding\n" * 120_000)  # 1.2 MB of comments
    with pytest.raises(TopologyError) as exc:
        load_cluster(p)
    assert "larger than the YAML size limit of 1,048,576 bytes" in str(exc.value)
    assert "SIMCLUSTER_YAML_MAX_BYTES" in str(exc.value)


def test_limits_can_be_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "small-bomb.yaml"
    p.write_text(billion_laughs(4))  # 10**4 strings: 11,111 values expanded
    assert read_yaml(p, TopologyError).data["a3"][0][0][0][0] == "lol"
    with pytest.raises(TopologyError, match="more than 1,000 values"):
        read_yaml(p, TopologyError, YamlLimits(max_nodes=1000))
    monkeypatch.setenv("SIMCLUSTER_YAML_MAX_NODES", "1000")
    with pytest.raises(TopologyError, match="more than 1,000 values"):
        read_yaml(p, TopologyError)
    monkeypatch.setenv("SIMCLUSTER_YAML_MAX_BYTES", "100")
    with pytest.raises(TopologyError, match="size limit of 100 bytes"):
        read_yaml(p, TopologyError)


def test_shared_anchors_within_limits_still_work(tmp_path: Path) -> None:
    """Anchors and merge keys of an ordinary file read as before."""
    p = tmp_path / "ok.yaml"
    p.write_text("base: &b {x: 1, y: [1, 2]}\nuse:\n  <<: *b\n  z: 3\nagain: *b\n")
    doc = read_yaml(p, TopologyError)
    assert doc.data == {"base": {"x": 1, "y": [1, 2]}, "use": {"x": 1, "y": [1, 2], "z": 3},
                        "again": {"x": 1, "y": [1, 2]}}
    assert doc.lines[("use", "z")] == 4


@pytest.mark.parametrize("path", sorted((ROOT / "topologies").glob("*.yaml"))
                         + sorted((ROOT / "bench" / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_real_files_are_within_the_limits(path: Path) -> None:
    assert read_yaml(path, SimclusterError).data


_TOKENS = ["a", "b", ":", " ", "\n", "- ", "&x ", "*x", "[", "]", "{", "}", ",", "'", '"',
           "1", "-1", ".nan", "<<: ", "!!str ", "? ", "|", ">", "#", "\t", "~", "\xff"]
_SEED = (ROOT / "topologies" / "h100-2node.yaml").read_text()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.lists(st.sampled_from(_TOKENS), max_size=60).map("".join),
                 st.tuples(st.integers(0, len(_SEED)), st.integers(0, 40),
                           st.lists(st.sampled_from(_TOKENS), max_size=6).map("".join))
                 .map(lambda t: _SEED[:t[0]] + t[2] + _SEED[t[0] + t[1]:])))
def test_any_text_reads_or_is_the_callers_error(text: str) -> None:
    """read_yaml on random and mutated text: a document, or the error class it was given."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "f.yaml"
        p.write_bytes(text.encode("utf-8", "surrogateescape"))
        try:
            doc = read_yaml(p, PlacementError)
        except PlacementError as exc:
            assert str(p) in str(exc)
            return
        assert repr(doc.data) == repr(yaml.safe_load(text))  # repr: NaN == NaN


@pytest.mark.parametrize("text,says", [
    ("ranks:\n  0: " + "1" * 5000 + "\n", "a number has more than 4,300 digits"),
    ("when: 2024-13-45\n", "a value cannot be read (ValueError: month must be in 1..12)"),
    ("a: !!bool x\n", "a value cannot be read (KeyError: 'x')"),
    ("a: !!timestamp x\n", "a value cannot be read (AttributeError"),
    ("a: !!int x\n", "a value cannot be read (ValueError: invalid literal"),
])
def test_values_python_cannot_build(tmp_path: Path, text: str, says: str) -> None:
    p = tmp_path / "v.yaml"
    p.write_text(text)
    with pytest.raises(PlacementError) as exc:
        read_yaml(p, PlacementError)
    assert str(exc.value).startswith(f"{p}: ") and says in str(exc.value)


def test_integer_keys_read_as_yaml_reads_them(tmp_path: Path) -> None:
    """``1:5`` is a base-60 integer in YAML 1.1 (65), ``0x1f`` hexadecimal: the line map uses
    the same keys as the data (it crashed on them before)."""
    p = tmp_path / "k.yaml"
    p.write_text("ranks:\n  1:5: a\n  0x1f: b\n  1_000: c\n")
    doc = read_yaml(p, PlacementError)
    assert doc.data == {"ranks": {65: "a", 31: "b", 1000: "c"}}
    assert doc.lines[("ranks", 65)] == 2 and doc.lines[("ranks", 1000)] == 4


def test_complex_key(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("name: t\n? [a, b]\n: 1\n")
    with pytest.raises(TopologyError, match=r"c\.yaml:2: \(top level\): a key is a mapping or "
                                            "a list; keys must be names or numbers"):
        read_yaml(p, TopologyError)
