"""Who may connect and how: the front door on the FIX ports, TLS, logon checks (addresses, passwords, throttles),
credentials and the secret store."""
