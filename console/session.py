"""Who is at the console: a sign-in form that takes a client or operator token once, a signed
session cookie after it, and a CSRF token in every form that changes something.

The cookie holds a session id, the token's name, its role and a keyed fingerprint of the token,
never the token. Each request looks the fingerprint up among the tokens configured now (taking
a token out of API_TOKENS/OPERATOR_TOKENS ends its sessions) and the id up among the open
sessions kept beside the views (signing out ends the session everywhere, even for a copied
cookie); no session outlives the hours it was given. The cookie is HttpOnly, SameSite=Strict,
and Secure when served over https.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, request, session
from flask.sessions import SecureCookieSessionInterface

from infrastructure.console_sessions import ConsoleSessions
from infrastructure.settings import Settings

SESSION_S = 8 * 3600
ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Caller:
    """Who is signed in: the token's name (recorded as who asked for a retry) and role."""

    name: str
    role: str  # "client" reads; "operator" may act

    @property
    def operator(self) -> bool:
        return self.role == "operator"


class _Cookies(SecureCookieSessionInterface):
    """Flask's signed cookie, with the flags a console's session needs."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(request and request.is_secure)

    def get_cookie_samesite(self, app: Flask) -> str:
        return "Strict"

    def get_cookie_httponly(self, app: Flask) -> bool:
        return True


def install(app: Flask, settings: Settings, sessions: ConsoleSessions) -> None:
    """Signs the app's sessions. The key is CONSOLE_SECRET when set; else it is derived from
    the tokens and the store, so every process of one deployment signs alike and changing the
    tokens ends every session."""
    app.session_interface = _Cookies()
    app.extensions["console_sessions"] = sessions
    app.config["SESSION_COOKIE_NAME"] = "console"
    app.config["SESSION_COOKIE_PATH"] = "/"
    app.config["PERMANENT_SESSION_LIFETIME"] = SESSION_S
    if settings.console_secret:
        app.secret_key = settings.console_secret.encode()
    else:
        material = "\0".join([settings.database_url, *(
            f"{n}:{t}" for n, t in (*settings.api_tokens, *settings.operator_tokens))])
        app.secret_key = hmac.new(b"orchestrator-console", material.encode(),
                                  hashlib.sha256).hexdigest()


def _fingerprint(secret: bytes | str, token: str) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()[:32]


def _known(settings: Settings) -> list[tuple[str, str, str]]:
    """(name, role, token) of every configured token; operator first, as the API ranks them."""
    return [*((n, "operator", t) for n, t in settings.operator_tokens),
            *((n, "client", t) for n, t in settings.api_tokens)]


def sign_in(app: Flask, settings: Settings, token: str) -> Caller | None:
    """Starts a session for a configured token; None for any other. Compares in constant
    time against every token, as the API does."""
    found = None
    for name, role, candidate in _known(settings):
        if hmac.compare_digest(token.encode(), candidate.encode()) and found is None:
            found = Caller(name, role)
            fingerprint = _fingerprint(app.secret_key or b"", candidate)
    if found is None:
        return None
    session.clear()
    session.permanent = True
    sid, until = secrets.token_urlsafe(24), int(time.time()) + SESSION_S
    app.extensions["console_sessions"].open(sid, until)
    session.update(sid=sid, who=found.name, role=found.role, fp=fingerprint, until=until,
                   csrf=secrets.token_urlsafe(32))
    return found


def sign_out(app: Flask) -> None:
    sid = session.get("sid")
    if isinstance(sid, str):
        app.extensions["console_sessions"].close(sid)
    session.clear()


def caller(app: Flask, settings: Settings) -> Caller | None:
    """Who this request's session belongs to; None when there is no valid session. Without
    tokens configured the console is open, as the API is."""
    if not settings.auth_enabled:
        return Caller(ANONYMOUS, "operator")
    sid, fingerprint, until = session.get("sid"), session.get("fp"), session.get("until")
    if not (isinstance(sid, str) and isinstance(fingerprint, str) and isinstance(until, int)
            and until >= time.time()):
        return None
    found = None
    for name, role, token in _known(settings):
        if hmac.compare_digest(fingerprint, _fingerprint(app.secret_key or b"", token)):
            found = found or Caller(name, role)
    if found is None or not app.extensions["console_sessions"].alive(sid):
        return None
    return found


def csrf_token() -> str:
    """This session's CSRF token (made on first use), for the forms' hidden field."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_ok(form: Any) -> bool:
    """Whether a POST carries this session's CSRF token."""
    expected, sent = session.get("csrf"), form.get("csrf", "")
    return isinstance(expected, str) and hmac.compare_digest(expected.encode(), sent.encode())


def local_path(target: str | None, default: str) -> str:
    """`target` if it is a path inside the console (where a sign-in may send the browser
    back to), else `default`: never another site."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/console/") or "\\" in target:
        return default
    return target
