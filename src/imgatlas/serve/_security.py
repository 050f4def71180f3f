"""What keeps the app safe when it is served: a token for anything but localhost, security
headers (a Content-Security-Policy without inline script), CSRF tokens on edits, and
uploads that are capped, sniffed and decoded with the scan's pixel limit."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from typing import Any

from imgatlas.serve._state import Settings

TOKEN_COOKIE = "imgatlas_token"
CSRF_COOKIE = "imgatlas_csrf"
CSRF_HEADER = "x-csrf-token"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


def token_ok(settings: Settings, request: Any) -> bool:
    """The request carries the app's token: ``Authorization: Bearer``, the cookie set at
    the first visit, or ``?token=`` (which the page then moves into the cookie)."""
    if settings.token is None:
        return True
    given = [request.cookies.get(TOKEN_COOKIE, ""), request.query_params.get("token", "")]
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        given.append(auth[7:].strip())
    return any(g and hmac.compare_digest(g.encode(), settings.token.encode()) for g in given)


def csrf_token(settings: Settings) -> str:
    """The per-process CSRF token pages embed and edits must echo (double submit: it is
    also set as a cookie; a cross-site page can neither read it nor set the header)."""
    return hmac.new(settings.csrf_secret.encode(), b"imgatlas-csrf",
                    hashlib.sha256).hexdigest()


def csrf_ok(settings: Settings, request: Any, form_value: str | None = None) -> bool:
    expected = csrf_token(settings)
    given = request.headers.get(CSRF_HEADER) or form_value or ""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    return bool(given) and hmac.compare_digest(given, expected) and \
        hmac.compare_digest(cookie, expected)
