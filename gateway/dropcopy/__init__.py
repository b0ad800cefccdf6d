"""Drop copies delivered: the service that feeds each broker's drop-copy session from the journal, in scope,
in its FIX version, gap-free across restarts (the pure rules are in the top-level dropcopy/ package)."""
