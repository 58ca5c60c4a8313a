"""reading domain."""
