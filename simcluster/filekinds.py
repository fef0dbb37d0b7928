"""Which kind of simcluster input a file is, so that a file given in the wrong place gets a
message that says what it is and where it goes (a topology given as the trace, a workload
given as the topology, a sweep spec, an nccl-tests log...).

Only the first 64 KiB are read, and YAML is only composed (its top-level keys read from the
node graph, aliases never expanded), so this never costs more than a glance, whatever the
file holds.
"""

from __future__ import annotations

from pathlib import Path

import yaml

_HEAD = 64 * 1024
# kind -> (what it is, where it goes)
KINDS: dict[str, tuple[str, str]] = {
    "workload": ("a native workload (Parquet)",
                 "give it as the TRACE of `simcluster replay` or `simcluster trace info`"),
    "topology": ("a topology file", "give it with --topology (-t)"),
    "accelerators": ("an accelerator file (user-defined accelerator_models)",
                     "give it with `simcluster replay --device-file FILE`, or list it under "
                     "accelerator_files: in a topology"),
    "placement": ("a placement file", "give it with --placement"),
    "sweep": ("a sweep spec", "run it with `simcluster sweep FILE --out DIR`"),
    "kineto": ("a PyTorch profiler (Kineto) trace",
               "give it (or its folder) as the TRACE of `simcluster replay`; name it *.json "
               "or *.json.gz"),
    "nccl-log": ("an nccl-tests log",
                 "compare against it with `simcluster collectives -t TOPOLOGY --compare FILE`"),
    "run-folder": ("a run folder", "give it to `simcluster report`, `export` or `diff`"),
}
_TOPOLOGY_KEYS = {"nodes", "fabric", "devices", "links", "accelerator_models",
                  "accelerator_files"}


def exists(path: str | Path) -> bool:
    """Whether ``path`` exists; False (not an exception) for a name the system cannot even
    look up (too long, a NUL byte, a component that is a file)."""
    try:
        return Path(path).exists()
    except (OSError, ValueError):
        return False


def is_file(path: str | Path) -> bool:
    """Whether ``path`` is a regular file; False for a name that cannot be looked up."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def identify(path: str | Path) -> str | None:
    """The kind (a key of :data:`KINDS`) of the file or folder at ``path``, or None.

    Example:
        >>> import tempfile, os
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = os.path.join(d, "t.yaml")
        ...     _ = open(p, "w").write("name: x\\nnodes: []\\n")
        ...     identify(p)
        'topology'
    """
    p = Path(path)
    if not exists(p):
        return None
    if p.is_dir():
        return ("run-folder" if (p / "summary.json").is_file()
                and (p / "timeline.parquet").is_file() else None)
    try:
        with p.open("rb") as fh:
            head = fh.read(_HEAD)
    except OSError:
        return None
    if head.startswith(b"PAR1"):
        return "workload"
    text = head.decode("utf-8", errors="replace")
    if "traceEvents" in text[:4096]:
        return "kineto"
    if "# nThread" in text or "out-of-place" in text and "busbw" in text:
        return "nccl-log"
    return _yaml_kind(text)


def _yaml_kind(text: str) -> str | None:
    """The kind of a YAML document from its top-level keys. Only composed (a node graph:
    aliases are not expanded, so an alias bomb costs nothing), never constructed."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError, ValueError):
        return None
    if not isinstance(node, yaml.MappingNode):
        return None
    keys = {k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
    if "accelerator_models" in keys and not keys & (_TOPOLOGY_KEYS - {"accelerator_models"}
                                                      | {"name"}):
        return "accelerators"
    if keys & _TOPOLOGY_KEYS:
        return "topology"
    if {"axes", "base"} <= keys or "axes" in keys and "points" in keys:
        return "sweep"
    if keys <= {"strategy", "ranks"} and keys:
        return "placement"
    return None


def hint(path: str | Path, expected: str) -> str:
    """``PATH is a topology file, not EXPECTED; give it with --topology (-t).`` when the file
    is recognisably another kind of input, else the empty string."""
    kind = identify(path)
    if kind is None:
        return ""
    what, where = KINDS[kind]
    return f"{path} is {what}, not {expected}; {where}."
