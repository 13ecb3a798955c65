"""Process entrypoints: one module per service, and the command line."""
