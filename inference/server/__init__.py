"""The HTTP server: `python -m inference serve MODEL` (app.py has the routes)."""
from inference.server.app import ServerSettings, create_app
from inference.server.runner import ServerThread, serve

__all__ = ["ServerSettings", "create_app", "ServerThread", "serve"]
