"""The seat and booking rules. Standard library only: no I/O, no drivers."""
