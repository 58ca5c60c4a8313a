"""Authentication (sessions, API tokens, invites), authorisation (roles) and CSRF."""
