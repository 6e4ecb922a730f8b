"""The Flask app factory: one blueprint per resource, problem+json errors, bearer tokens."""
from __future__ import annotations

from flask import Flask

import console
from api import errors
from api.access import install_access
from api.limits import MAX_BODY
from api.waiting import install_waiter
from infrastructure.bootstrap import System

__all__ = ["MAX_BODY", "create_app"]


def create_app(system: System, max_waiting: int | None = None) -> Flask:
    """The API over `system`; GET endpoints read its views, commands go to its workflows.

    `max_waiting` bounds the `?wait` requests that wait at once in this process; a server with
    a pool of request threads passes a part of that pool (see api.serve), so that waiting
    requests cannot take every thread. None (test clients) sets no bound."""
    from api import definitions, events, operations, orders, workflows

    app = Flask("orchestrator")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["system"] = system
    install_waiter(app, system, max_waiting)
    errors.register(app)
    install_access(app, system.settings)
    console.install(app, system)
    for blueprint in (orders.bp, definitions.bp, workflows.bp, events.bp, operations.bp):
        app.register_blueprint(blueprint)
    return app
