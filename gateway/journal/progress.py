"""Progress of a long pass over the journal, measured in journal ids: no COUNT over the table is needed.

Pure: the caller gives the ``progress(done, total)`` callback (the CLI draws a bar on a terminal).
"""
from __future__ import annotations

from typing import Iterator


def with_progress(rows, lo: int | None, hi: int | None, progress, every: int = 1000) -> Iterator:
    """``rows`` (each with an ``id``, in id order) passed through, calling ``progress(done, total)`` every
    ``every`` rows with the share of the ids lo..hi behind: a measure that needs no COUNT over the journal."""
    if lo is None or hi is None:
        yield from rows
        return
    total = hi - lo + 1
    for n, row in enumerate(rows, 1):
        if n % every == 0:
            progress(row.id - lo + 1, total)
        yield row
    progress(total, total)
