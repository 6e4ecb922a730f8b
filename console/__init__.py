"""The operator console: server-rendered pages under /console over the same views and
commands as the API (pages in `pages`, sign-in and CSRF in `session`, drawings in `svg`)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask

from infrastructure.console_sessions import ConsoleSessions

if TYPE_CHECKING:
    from infrastructure.bootstrap import System


def install(app: Flask, system: System) -> None:
    """Serves the console under /console, and `/` to browsers. The console checks its own
    sessions; the API's bearer tokens do not apply to its pages."""
    from console import pages, session

    session.install(app, system.settings, ConsoleSessions(system.views))
    app.register_blueprint(pages.bp)
    app.add_url_rule("/", "root", pages.root)


def is_console(path: str) -> bool:
    """Whether a request path is the console's (its pages check access themselves)."""
    return path == "/console" or path.startswith("/console/")
