"""Translate between quickfix messages and the domain, for FIX 4.2, 4.4 and 5.0.

This is the one package that knows how the FIX versions differ: ``decode`` reads
what comes in (clients' intents, venues' reports and rejects, market data),
``encode`` writes what goes out (reports to clients, child orders to venues,
market data), both over ``tagvalue`` (the versions, tag=value text, numbers and
timestamps as FIX writes them).

Cost model (docs/quickfix-binding.md): every call into the binding releases and
retakes the GIL, and with several busy threads each of those becomes a thread
switch. So an outbound message is built as one tag=value string and handed to
quickfix in one call (``fix.Message(text, False)``), and an inbound message is
read with one ``toString()`` and split in Python, instead of one
``setField``/``getField`` call per field.

Decoding raises quickfix's own exceptions (``FieldNotFound``, ``IncorrectTagValue``)
for messages that cannot be understood, so quickfix answers them with a
session-level Reject naming the tag. Business problems are not decided here.

Intake rule (docs/architecture.md, "What the gateway accepts"): a client's message
is accepted only if everything the gateway will echo back or forward can be encoded
again, exactly. String fields must be printable ASCII, the sessions' one encoding
(``decode._str``: otherwise 373=6, IncorrectDataFormat); quantities and prices must be
plain FIX decimals (no exponent, no "NaN") within ``decode.IntakeLimits``
(``decode._qty``/``_px``: otherwise 373=5, value out of range). ``tests/test_intake.py``
checks, with wide generated inputs, that every encoder can write whatever the decoders
accept.
"""
