"""``imgatlas serve``: a web app over a workspace (FastAPI; server-rendered pages, a little
plain JS, no CDN), built by :func:`create_app`, the same core as the CLI."""

from imgatlas.serve._app import create_app

__all__ = ["create_app"]
