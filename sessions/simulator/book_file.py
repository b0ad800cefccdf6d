"""The working orders a venue simulator keeps across its own restart: saved to its book file when it stops in
good order, taken back (and the file removed) by the next simulator started on the same store.

A killed simulator saves nothing, so the next one starts without its orders, as a venue that lost its book
would (a status request for one of them is answered "unknown order")."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from venuesim.matcher import Matcher

log = logging.getLogger("fixgw.venuesim")


class BookFile:
    """One simulator's book file (``path``); ``name`` is the venue's, for the log and the file."""

    def __init__(self, path: Path, name: str):
        self.path = path
        self._name = name

    def take_back(self, matcher: Matcher) -> None:
        """Put the orders saved by the previous simulator on this store back into ``matcher``; remove the file."""
        if not self.path.exists():
            return
        try:
            saved = json.loads(self.path.read_text())
            restored = matcher.restore_book(saved["orders"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("venue simulator %s: cannot read its saved orders from %s (%s); starting without them",
                        self._name, self.path, exc)
            restored = None
        self.path.unlink(missing_ok=True)
        if restored is not None:
            log.info("venue simulator %s: %d working order(s) taken back from %s", self._name, restored,
                     self.path)

    def save(self, orders: list[dict]) -> None:
        """Write ``orders`` (``Matcher.resting_book()``) for the next start."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"venue": self._name, "orders": orders}))
            tmp.replace(self.path)
        except OSError as exc:
            log.warning("venue simulator %s: cannot save its %d working order(s) to %s: %s", self._name,
                        len(orders), self.path, exc)
            return
        if orders:
            log.info("venue simulator %s: %d working order(s) saved to %s for its next start", self._name,
                     len(orders), self.path)
