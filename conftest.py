"""Collection rules for the whole tree: the recorder's modules that import PyTorch at the top
(``simcluster/workload/record``) are left out of the doctests when the optional extra is
not installed; their tests skip themselves (``pytest.importorskip``). Which modules those are
is read from the files, so a new recorder module that imports PyTorch needs no entry here."""

import re
from pathlib import Path

try:
    import torch  # noqa: F401
except ImportError:
    _RECORD = Path(__file__).parent / "simcluster" / "workload" / "record"
    _TOP_IMPORT = re.compile(r"^(import|from) torch\b", re.MULTILINE)
    collect_ignore_glob = [f"simcluster/workload/record/{p.name}"
                           for p in sorted(_RECORD.glob("*.py"))
                           if _TOP_IMPORT.search(p.read_text(encoding="utf-8"))]
    collect_ignore_glob.append("tests/workload/record/*_train.py")
