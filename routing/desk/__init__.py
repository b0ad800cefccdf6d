"""The core's handlers, one module per kind of intent; ``routing.core.Core.handle`` dispatches to them.

Each handler is a plain function ``handle_x(core, cmd) -> Outcome`` that reads and changes the core's
state (its order book and indexes, venues, clients, risk state): the core owns the state, the desk
decides what each command does to it. Nothing here does I/O.
"""
