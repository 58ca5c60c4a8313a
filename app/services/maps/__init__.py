"""maps domain."""
