"""Drop copies for brokers and clearing firms: pure logic, no quickfix, no database.

- ``spec``: what an ExecutionReport may carry in FIX 4.2, 4.4 and 5.0 (from ``fixspecs/``);
- ``translate``: a journaled ExecutionReport rewritten as a copy in the receiver's version;
- ``filters``: which reports a drop-copy session sees (client-/venue-side, clients, accounts, venues);
- ``ledger``: per-session delivery watermarks (journal ids), resets and acknowledgements.

The quickfix side is ``sessions/dropcopy.py``; the thread that reads the journal and
sends the copies is ``gateway/dropcopy/service.py``; the design is in docs/architecture.md.
"""
