"""The demo: a client of the services that builds a small study end to end."""
