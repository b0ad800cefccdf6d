"""The base of every model of gateway.cfg: frozen, and unknown keys refused, so a typo in the file stops start-up
with the key's name instead of being silently ignored."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
