"""Bearer tokens: clients start and read workflows, send signals and read definitions;
operators may also retry, cancel, list, read the event feed and register definitions. Tokens
are compared in constant time and never logged."""
from __future__ import annotations

import hmac

from flask import Flask, g, request

from api.errors import Problem
from console import is_console
from infrastructure.settings import Settings

OPEN = {"/", "/health", "/ready", "/metrics"}  # "/": a browser is sent to the console
OPERATOR_ONLY = {"workflows.retry", "workflows.cancel", "workflows.search", "events.feed",
                 "definitions.apply"}


def _match(token: str, known: tuple[tuple[str, str], ...]) -> str | None:
    """The name of the token that matches, if any."""
    found = None
    for name, candidate in known:  # no early exit: the time says nothing of which matched
        if hmac.compare_digest(token.encode(), candidate.encode()):
            found = name
    return found


def install_access(app: Flask, settings: Settings) -> None:
    """Checks every request's token when tokens are configured; sets g.caller (the
    token's name, recorded as who asked for a retry) and g.role."""

    @app.before_request
    def _check() -> None:
        g.caller, g.role = "anonymous", "operator"
        if not settings.auth_enabled or request.path in OPEN or is_console(request.path):
            return
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Problem(401, "unauthorized", "Unauthorized", "a bearer token is required")
        operator = _match(token, settings.operator_tokens)
        client = _match(token, settings.api_tokens)
        if operator is not None:
            g.caller, g.role = operator, "operator"
        elif client is not None:
            g.caller, g.role = client, "client"
        else:
            raise Problem(401, "unauthorized", "Unauthorized", "unknown token")
        if g.role != "operator" and request.endpoint in OPERATOR_ONLY:
            raise Problem(403, "forbidden", "Forbidden", "this endpoint needs an operator token")
