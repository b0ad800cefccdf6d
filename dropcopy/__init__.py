"""Drop-copy sessions for brokers (issue 6): not built yet. The journal they will replay from is in gateway/journal.py."""
