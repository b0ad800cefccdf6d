"""The venue simulator's engine, pure: books, matching, misbehaviour on purpose and its settings; its FIX acceptor is
in sessions/simulator/."""
