"""Bearer tokens (CONTRACT.md section 6): clients place and read orders; operators may also
retry, cancel and list. Tokens are compared in constant time and never logged."""
from __future__ import annotations

import hmac

from flask import Flask, g, request

from api.errors import Problem
from infrastructure.settings import Settings

OPEN = {"/health", "/ready", "/metrics"}
OPERATOR_ONLY = {"workflows.retry", "workflows.cancel", "workflows.search", "events.feed"}


def _matches(token: str, known: tuple[str, ...]) -> bool:
    found = False
    for candidate in known:  # no early exit: the time taken says nothing about which matched
        found |= hmac.compare_digest(token.encode(), candidate.encode())
    return found


def install_access(app: Flask, settings: Settings) -> None:
    """Checks every request's token when tokens are configured; sets g.caller."""

    @app.before_request
    def _check() -> None:
        g.caller = "anonymous"
        if not settings.auth_enabled or request.path in OPEN:
            return
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Problem(401, "unauthorized", "Unauthorized", "a bearer token is required")
        if _matches(token, settings.operator_tokens):
            g.caller = "operator"
        elif _matches(token, settings.api_tokens):
            g.caller = "client"
        else:
            raise Problem(401, "unauthorized", "Unauthorized", "unknown token")
        if g.caller != "operator" and request.endpoint in OPERATOR_ONLY:
            raise Problem(403, "forbidden", "Forbidden", "this endpoint needs an operator token")
