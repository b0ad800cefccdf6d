"""The repository's files at another git revision, for the benchmarks that compare this tree with it in the same
run (bench/throughput.py's mode O, bench/core_cost.py, bench/journal_cpu.py)."""
from __future__ import annotations

import contextlib
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def revision_tree(rev: str | None) -> Iterator[Path | None]:
    """This repository's files at git revision ``rev``, exported to a temporary directory (None: no export)."""
    if not rev:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="fixgw-bench-rev-") as d:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", d], input=archive, check=True)
        yield Path(d)
