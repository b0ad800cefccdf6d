"""What is known of FIX itself: the data dictionaries (FIX42/44/50.xml, FIXT11.xml), raw field reads on FIX text
(raw.py) and secret fields masked (redact.py)."""
