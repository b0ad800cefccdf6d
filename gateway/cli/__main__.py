"""`python -m gateway.cli`: the same as the `fixgw` command."""
from gateway.cli.main import main

main()
