"""Use cases: handlers that run the domain against the ports."""
