"""The `fixgw` command: one module per command group; main.py wires them."""

from gateway.cli.main import main

__all__ = ["main"]
