"""The `fixgw` command: one module per command group; main.py wires them (the entry point is
``gateway.cli.main:main``; `python -m gateway.cli` runs it too)."""
