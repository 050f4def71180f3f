"""``imgatlas serve``: a web app over a workspace (FastAPI; server-rendered pages, a little
plain JS, no CDN), built by :func:`create_app`, the same core as the CLI."""

from imgatlas._lazy import lazy_exports
from imgatlas.serve._app import create_app

__getattr__, __dir__ = lazy_exports(__name__, {
    **dict.fromkeys(["is_loopback", "new_token"], "._security"),
})

__all__ = [
    "create_app",
    "is_loopback",
    "new_token",
]
