"""What stands between the public and the form: a cap on every request body, a CSRF
token (double submit: a random cookie the page's form must repeat), a honeypot field,
and security headers on every answer. Each refusal is a page of its own (``web``)."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

MAX_BODY = 16 * 1024  # bytes of a form post; the longest honest one is under 3 kB
CSRF_COOKIE = "lw_csrf"
CSRF_FIELD = "csrf"
HONEYPOT_FIELD = "website"  # hidden from people (and from screen readers); bots fill it

# no inline script or style, nothing from elsewhere, no framing, forms post only here
POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]

Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def new_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_ok(cookie: str | None, field: object) -> bool:
    return (
        isinstance(cookie, str)
        and isinstance(field, str)
        and len(cookie) >= 32
        and secrets.compare_digest(cookie.encode(), field.encode())
    )


def honeypot_filled(form: dict[str, Any]) -> bool:
    return bool(str(form.get(HONEYPOT_FIELD, "")).strip())


class Guard:
    """ASGI middleware: security headers on every response (and no caching of pages that
    may hold answers); a post's body read whole, up to ``MAX_BODY``, before any route
    sees it, else ``too_large`` answers."""

    def __init__(self, app: Asgi, too_large: Asgi, limit: int = MAX_BODY):
        self.app = app
        self.too_large = too_large
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/assets/")

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                extra = [] if static else [(b"cache-control", b"no-store")]
                message["headers"] = [*message.get("headers", []), *HEADERS, *extra]
            await send(message)

        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self._run(scope, receive, with_headers)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.limit:
            await self.too_large(scope, receive, with_headers)
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.limit:
                await self.too_large(scope, receive, with_headers)
                return
            if not message.get("more_body", False):
                break
        delivered = False

        async def replay() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self._run(scope, replay, with_headers)

    async def _run(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The app's failure is answered (its error page) and logged by type there; it goes
        no further, so no server's traceback (whose text may hold an answer) is logged."""
        try:
            await self.app(scope, receive, send)
        except Exception:
            pass
