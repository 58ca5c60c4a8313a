"""The `radsal` command line."""
