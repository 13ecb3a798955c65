"""Benchmarks: commands that print figures and the settings they ran with."""
