"""Problem documents (RFC 9457) written by the HTTP servers themselves, for requests that never
reach the app: a request line or a head too large, a client too slow. The app's own problems
come from api.errors; these match them in shape (type, title, status, detail)."""
from __future__ import annotations

import json
from http import HTTPStatus

MAX_DETAIL = 200  # a detail may quote the client's request line: never echo all of it back


def title_of(status: int) -> str:
    """The status's standard reason phrase, e.g. 'Request-URI Too Long'."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_json(status: int, detail: str) -> bytes:
    """The problem document's body."""
    title = title_of(status)
    slug = title.lower().replace(" ", "-")
    return json.dumps({"type": f"/problems/{slug}", "title": title, "status": status,
                       "detail": detail[:MAX_DETAIL]}).encode()


def problem_message(status: int, detail: str) -> bytes:
    """A whole HTTP/1.1 answer carrying the problem document; the server closes after it."""
    body = problem_json(status, detail)
    head = (f"HTTP/1.1 {status} {title_of(status)}\r\n"
            "Connection: close\r\n"
            "Content-Type: application/problem+json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body
