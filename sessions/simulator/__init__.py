"""The venue simulator's FIX side: its acceptor and callbacks (venue.py), order entry and status or misbehaviour
on purpose (orders.py), market data subscriptions (market_data.py), its one sender thread (outbox.py) and the file
that keeps its working orders across a restart (book_file.py); the matching engine is venuesim/, pure."""
