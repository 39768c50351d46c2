"""The dashboard's guard: who may read, who may change, and from where.

* **Bind address.** Loopback by default. Any other address needs a token.
* **Token.** With a token, every ``/api`` request must carry it: ``Authorization: Bearer
  TOKEN`` (scripts), or the session cookie a browser gets by opening ``/?token=TOKEN`` once or
  by typing the token into the page. The cookie holds an HMAC of the token, never the token.
* **Cross-site requests.** Every state-changing request (POST, PUT, PATCH, DELETE) must carry an
  ``X-CSRF-Token`` header equal to the ``hyperagents_csrf`` cookie (double submit: another site
  can neither read the cookie nor add the header without a CORS preflight, which is never
  granted), must be JSON, and must not come from another origin (``Origin`` and
  ``Sec-Fetch-Site``). A request authenticated by the ``Authorization`` header is not one a
  browser sends on its own, so it needs no CSRF cookie.
* **DNS rebinding.** Bound to loopback, the dashboard answers only requests addressed to a
  loopback host name, so a web page whose name resolves to 127.0.0.1 cannot read it.
* **Headers.** A strict Content-Security-Policy (scripts and styles from the dashboard only),
  no framing, no sniffing, no referrer, no caching of API answers.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "SECURITY_HEADERS",
    "SESSION_COOKIE",
    "Guard",
    "is_loopback",
]

SESSION_COOKIE = "hyperagents_session"
CSRF_COOKIE = "hyperagents_csrf"
CSRF_HEADER = "x-csrf-token"
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Shortest token accepted: a guessable token on a network address is no protection.
MIN_TOKEN_LENGTH = 16

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) is this machine only."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """The host part of a ``Host`` header (``name:port``, ``[v6]:port``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[: header.find("]") + 1] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """Checks requests against the dashboard's token, origin and host rules."""

    def __init__(
        self, *, token: str | None, loopback_only: bool, double_submit: bool = True
    ) -> None:
        self.token = token or None
        self.loopback_only = loopback_only
        #: Require the CSRF cookie on state changes without a bearer token (a page's requests).
        #: An API for programs (``hyperagents serve``) turns it off: the JSON content type and
        #: the origin checks still refuse what a browser sends from another site, since a
        #: cross-site JSON request needs a CORS preflight that is never granted.
        self.double_submit = double_submit
        self._session = (
            hmac.new(
                self.token.encode(), b"hyperagents-dashboard-session", hashlib.sha256
            ).hexdigest()
            if self.token
            else None
        )

    @property
    def session_value(self) -> str | None:
        """The value of the session cookie (None without a token)."""
        return self._session

    def token_matches(self, given: str) -> bool:
        """Constant-time comparison with the token."""
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def host_allowed(self, request: Request) -> bool:
        """Whether the request is addressed to a name this dashboard answers to."""
        if not self.loopback_only:
            return True
        return is_loopback(_host_name(request.headers.get("host", "")))

    def authenticated(self, request: Request) -> bool:
        """Whether the request carries the token (always true without one)."""
        if self.token is None:
            return True
        if self.bearer(request):
            return True
        cookie = request.cookies.get(SESSION_COOKIE, "")
        assert self._session is not None
        return hmac.compare_digest(cookie.encode(), self._session.encode())

    def bearer(self, request: Request) -> bool:
        """Whether the request authenticates with a valid ``Authorization: Bearer`` header."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.token_matches(value.strip())

    def cross_site_problem(self, request: Request) -> str | None:
        """Why a state-changing request is refused as possibly cross-site (None: it is fine)."""
        if request.method not in _UNSAFE:
            return None
        origin = request.headers.get("origin")
        if origin is not None:
            parts = urlsplit(origin)
            if parts.netloc.lower() != request.headers.get("host", "").lower():
                return "cross-origin request refused"
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return "cross-site request refused"
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            return "state-changing requests must send JSON (Content-Type: application/json)"
        if self.bearer(request) or not self.double_submit:
            return None
        cookie = request.cookies.get(CSRF_COOKIE, "")
        header = request.headers.get(CSRF_HEADER, "")
        if not cookie or not header or not hmac.compare_digest(cookie.encode(), header.encode()):
            return "missing or wrong CSRF token (reload the page)"
        return None


def new_csrf_token() -> str:
    """A fresh random CSRF token."""
    return secrets.token_urlsafe(24)
