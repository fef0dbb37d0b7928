"""Collection rules for the whole tree: the recorder's modules that import PyTorch at the top
(``simcluster/workload/record``) are left out of the doctests when the optional extra is
not installed; their tests skip themselves (``pytest.importorskip``)."""

try:
    import torch  # noqa: F401
except ImportError:
    collect_ignore_glob = ["simcluster/workload/record/tracer.py",
                           "simcluster/workload/record/environment.py",
                           "tests/workload/record/*_train.py"]
