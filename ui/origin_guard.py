"""Requests the web app refuses before gradio sees them: other web pages, other host names, fetches of URLs.

gradio's own CORS rules trust any page served from ``localhost`` (any port), a ``Host`` header is not checked
(a web page on a name the attacker controls can be re-pointed at 127.0.0.1: DNS rebinding), uploads are accepted
from any origin (simple form posts need no CORS preflight), and ``/gradio_api/file=https://...`` fetches a URL for
the caller.  :class:`OriginGuard`, an ASGI middleware installed by :func:`ui.launch.serve`, answers 403 to:

* a request whose ``Origin`` is not the server itself (scheme, host and port of its ``Host`` header) or one of
  ``settings.serve_origins`` (a reverse proxy's public URL): another web page, another port of localhost, a
  sandboxed frame (``Origin: null``).  Requests without an ``Origin`` (curl, gradio_client, same-origin GETs)
  pass: a browser always sends one with a cross-origin request;
* when the server listens on a loopback address, a ``Host`` that is not a loopback name or address;
* a file route naming a URL instead of a file (the app is offline and has no business fetching pages).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any, Awaitable, Callable, Iterable
from urllib.parse import unquote, urlsplit

__all__ = ["OriginGuard", "loopback_host"]

log = logging.getLogger(__name__)

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

_FILE_ROUTES = ("/gradio_api/file=", "/file=", "/gradio_api/proxy=", "/proxy=")


def loopback_host(name: str) -> bool:
    """Whether a host name or address (no port) is this machine: ``localhost`` or a loopback address."""
    name = name.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _hostname(host: str) -> str:
    """'127.0.0.1:7860' -> '127.0.0.1'; '[::1]:7860' -> '::1'."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class OriginGuard:
    """See the module docstring.  ``loopback_only``: the server listens on a loopback address (then the Host
    must name this machine); ``origins``: extra allowed origins ('https://osler.example.org')."""

    def __init__(self, app: ASGIApp, *, loopback_only: bool, origins: Iterable[str] = ()) -> None:
        self.app = app
        self.loopback_only = loopback_only
        self.origins = {o.rstrip("/").lower() for o in origins}

    def why_refused(self, scope: Scope) -> str | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        host = headers.get("host", "").strip().lower()
        if self.loopback_only and host and not loopback_host(_hostname(host)):
            return f"host {host!r} is not this machine"
        origin = headers.get("origin")
        if origin is not None:
            o = origin.strip().rstrip("/").lower()
            parts = urlsplit(o)
            if o not in self.origins and not (parts.scheme in ("http", "https") and parts.netloc == host):
                return f"requests from another web page ({origin!r}) are not served"
        path = unquote(scope.get("path") or "")
        for route in _FILE_ROUTES:
            if path.startswith(route) and "://" in path[len(route):]:
                return "the file route serves files, not URLs"
        return None

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        why = self.why_refused(scope)
        if why is None:
            await self.app(scope, receive, send)
            return
        log.warning("refused %s %s: %s", scope.get("method", "WS"), scope.get("path"), why)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = f"Forbidden: {why}.".encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
