"""The operator API over HTTP: metrics and health, the admin endpoints the CLI calls, their guard, names, what-if."""
