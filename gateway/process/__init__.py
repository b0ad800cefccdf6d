"""The running gateway: the process that wires sessions, the order desk, journal, drop copy and the operator
surface together (server.py), its engine thread, and how it starts and stops."""
