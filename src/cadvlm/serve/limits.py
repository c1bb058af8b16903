"""Request bodies over the limit are refused with 413 before they are read (or as soon as they pass it).

Why a raw ASGI middleware and not a check in the route: by the time a FastAPI route runs, the
multipart body has been parsed and spooled to disk. Here a declared Content-Length over the limit
is answered at once, and a body sent without one (chunked) is counted as it streams in and cut
off the moment it crosses the limit. The limit depends on the path: a batch zip may be larger
than one picture.
"""

from __future__ import annotations

import json


class _TooLarge(Exception):
    pass


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):g} MB"


class BodyLimitMiddleware:
    def __init__(self, app, limit: int, overrides: dict[str, int] | None = None):
        self.app = app
        self.limit = int(limit)
        self.overrides = dict(overrides or {})  # path prefix -> limit

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.overrides.items():
            if path.startswith(prefix):
                return limit
        return self.limit

    async def _refuse(self, send, limit: int) -> None:
        body = json.dumps({"detail": f"request body over the {_mb(limit)} limit"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope.get("path", ""))
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                too_big = False  # the server itself rejects a malformed header
            if too_big:
                return await self._refuse(send, limit)
        seen = {"bytes": 0, "started": False, "over": False}

        async def counting_receive():
            message = await receive()
            if message["type"] == "http.request":
                seen["bytes"] += len(message.get("body", b""))
                if seen["bytes"] > limit:
                    seen["over"] = True
                    raise _TooLarge()
            return message

        async def tracking_send(message):
            # FastAPI turns any error while reading a form into its own 400: once the body went
            # over the limit, whatever the app answers is replaced by the 413.
            if seen["over"]:
                if message["type"] == "http.response.start" and not seen["started"]:
                    seen["started"] = True
                    await self._refuse(send, limit)
                return
            if message["type"] == "http.response.start":
                seen["started"] = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not seen["started"]:
                seen["started"] = True
                await self._refuse(send, limit)
