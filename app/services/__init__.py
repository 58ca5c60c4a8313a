"""Business logic. Services take a Session, never import FastAPI and never commit."""
