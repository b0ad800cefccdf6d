"""The order desk: ``core.Core`` dispatches each command to its handler here, one module per kind of intent.

Each handler is a plain function ``handle_x(core, cmd) -> Outcome`` that reads and changes the desk's
state through ``state.DeskState`` (the order book and indexes, venues, clients, risk state), the one
interface handlers use; the parent-child rules they follow are ``orders.lifecycle``'s. Nothing here does I/O.
"""
