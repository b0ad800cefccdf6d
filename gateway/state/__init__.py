"""Order state on disk: the state log written before the messages it explains are sent, and recovery after a
crash or a stop from it."""
