"""The Flask app factory: one blueprint per resource, problem+json errors, bearer tokens."""
from __future__ import annotations

from flask import Flask

from api import errors
from api.access import install_access
from api.waiting import ViewWaiter
from infrastructure.bootstrap import System

MAX_BODY = 64 * 1024


def create_app(system: System) -> Flask:
    """The API over `system`; GET endpoints read its views, commands go to its workflows."""
    from api import events, operations, orders, workflows

    app = Flask("orchestrator")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["system"] = system
    app.extensions["waiter"] = ViewWaiter(system)
    errors.register(app)
    install_access(app, system.settings)
    for blueprint in (orders.bp, workflows.bp, events.bp, operations.bp):
        app.register_blueprint(blueprint)
    return app
