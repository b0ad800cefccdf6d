"""The order desk: ``core.Core`` owns the orders and dispatches each command to its handler here, one module per
kind of intent.

Each handler is a plain function ``handle_x(core, cmd) -> Outcome`` that reads and changes the core's
state (its order book and indexes, venues, clients, risk state): the core owns the state, the desk
decides what each command does to it. Nothing here does I/O.
"""
