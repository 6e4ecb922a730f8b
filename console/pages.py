"""The console's pages: the workflow list, one workflow, the definitions and health, and the
operator's actions (retry, cancel, signal, bulk), all over the API's own views and commands.

Every page reads without JavaScript; a form that changes something answers with a redirect
back to the page (so a reload never repeats it) and a message of what happened."""
from __future__ import annotations

import difflib
import json
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import yaml
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from api import requests_parsing as parse
from api.errors import Problem
from api.waiting import seen
from application import strict_json
from application.definitions import DefinitionNotFound
from application.health import health as read_health
from application.views import Search
from application.workflows import InvalidInput, WorkflowNotFound
from console import saga, session, svg
from domain.definitions import Definition, Step, Wait
from domain.workflow import RETRYABLE, TERMINAL, InvalidTransition, UnknownSignal

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static")
PAGE = 50
STATUSES = ("STARTED", "WAITING", "COMPENSATING", *TERMINAL)
# What a datetime-local field sends: a time without a zone, read as UTC (the page says so).
LOCAL_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d{1,6})?)?")
MAX_REASON = 500
COUNTS_S = 5.0  # how old the list's counts per status may be


def _system() -> Any:
    return current_app.extensions["system"]


# --- who may do what ----------------------------------------------------------------------

@bp.before_request
def _gate() -> BaseResponse | None:
    if request.endpoint == "console.static":
        return None
    system = _system()
    if request.method == "POST" and not session.csrf_ok(request.form):
        abort(403, "this form has expired or did not come from the console: reload the page")
    g.console_caller = session.caller(current_app, system.settings)
    if request.endpoint in ("console.login", "console.logout"):
        return None
    if g.console_caller is None:
        return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
    g.caller = g.console_caller.name
    if request.method == "POST" and not g.console_caller.operator:
        abort(403, "acting on workflows needs an operator token")
    return None


# Only the console's own script and styles; no page of it inside another site's frame (whose
# buttons a hidden frame could trick an operator into pressing). SVG carries inline styles.
POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
          "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if response.mimetype == "text/html":
        response.headers["Cache-Control"] = "no-store"  # a page of data: never from a cache
    return response


@bp.app_context_processor
def _template_globals() -> dict[str, Any]:
    return {"csrf_token": session.csrf_token, "caller": g.get("console_caller"),
            "auth": _system().settings.auth_enabled, "status_class": _status_class}


def _status_class(status: str) -> str:
    if status in ("COMPLETED",):
        return "ok"
    if status in ("FAILED", "CANCELLED"):
        return "ended"
    if status == "COMPENSATION_FAILED":
        return "alarm"
    if status in ("COMPENSATING",):
        return "undoing"
    return "live"


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The sign-in form: a token once, a session after."""
    system = _system()
    target = session.local_path(request.values.get("next"), url_for("console.workflows"))
    if not system.settings.auth_enabled:
        return redirect(target)
    error = None
    if request.method == "POST":
        if session.sign_in(current_app, system.settings, request.form.get("token", "")):
            return redirect(target)
        error = "That token is not known here."
    status = 401 if error else 200
    return render_template("login.html", next=target, error=error), status


@bp.post("/logout")
def logout() -> BaseResponse:
    session.sign_out(current_app)
    return redirect(url_for("console.login"))


@bp.errorhandler(Problem)
def _problem(e: Problem) -> tuple[str, int]:
    return render_template("error.html", status=e.status, title=e.title, detail=e.detail), e.status


@bp.errorhandler(WorkflowNotFound)
@bp.errorhandler(DefinitionNotFound)
def _not_found(e: Exception) -> tuple[str, int]:
    return render_template("error.html", status=404, title="Not found", detail=str(e)), 404


@bp.errorhandler(403)
def _forbidden(e: Any) -> tuple[str, int]:
    return render_template("error.html", status=403, title="Forbidden",
                           detail=e.description), 403


# --- the workflow list --------------------------------------------------------------------

def _filters() -> tuple[Search, dict[str, str]]:
    """The list's filters from the query string, checked as the API checks them."""
    raw = {k: v.strip() for k, v in request.args.items()
           if k in ("status", "definition", "key", "from", "to", "after") and v.strip()}
    status, definition, key = raw.get("status"), raw.get("definition"), raw.get("key")
    if status is not None and not parse.STATUS_NAME.fullmatch(status):
        raise Problem(400, "invalid-parameter", "Invalid filter",
                      "status must be a status name (A-Z, 0-9 and _)")
    if definition is not None and not parse.DEFINITION_NAME.fullmatch(definition):
        raise Problem(400, "invalid-parameter", "Invalid filter",
                      "definition must be a definition's name")
    times = {}
    for name in ("from", "to"):
        if name in raw:
            value = raw[name] + ("Z" if LOCAL_TIME.fullmatch(raw[name]) else "")
            times[name] = parse.timestamp({name: value}, name)
    query = Search(status=status, definition=definition,
                   key=parse.key(key) if key is not None else None,
                   created_after=times.get("from"), created_before=times.get("to"),
                   limit=PAGE, after=raw.get("after"))
    return query, raw


@bp.get("/")
def workflows() -> str:
    """Workflows, newest first, filtered, by pages; the count per status as chips."""
    system = _system()
    query, raw = _filters()
    try:
        page = system.views.search(query)
    except ValueError:
        raise Problem(400, "invalid-parameter", "Invalid filter",
                      "after: not a page this console handed out") from None
    counts = _counts(query.definition)
    base = {k: v for k, v in raw.items() if k != "after"}
    chips = [(status, counts.get(status, 0), _link(base, status=status, after=None))
             for status in [*STATUSES, *sorted(set(counts) - set(STATUSES))]]
    return render_template(
        "workflows.html", page=page, raw=raw, chips=chips, total=sum(counts.values()),
        all_link=_link(base, status=None),
        statuses=STATUSES, definitions=system.definitions.names(),
        next_link=_link(base, after=page.next) if page.next else None,
        first_link=_link(base) if query.after else None,
        live=True)


def _counts(definition: str | None) -> dict[str, int]:
    """The count per status, read at most once per COUNTS_S in this process: counting every
    workflow takes time that grows with the store, and a list that refreshes every few
    seconds, opened by several operators, must not put that on the views at each request."""
    cache = current_app.extensions.setdefault("console_counts", {})
    now = time.monotonic()
    found = cache.get(definition)
    if found is None or now - found[0] > COUNTS_S:
        found = cache[definition] = (now, _system().views.counts(definition))
    return dict(found[1])


def _link(params: dict[str, str], **changes: str | None) -> str:
    merged = {**params, **changes}
    query = urlencode({k: v for k, v in merged.items() if v})
    return url_for("console.workflows") + (f"?{query}" if query else "")


@bp.post("/workflows/bulk")
def bulk() -> BaseResponse:
    """Retries or cancels each selected workflow; says what happened to each that could not."""
    action = request.form.get("action")
    reason = _reason()
    ids = request.form.getlist("id")
    if action not in ("retry", "cancel") or not ids:
        flash("Select workflows and an action.", "error")
        return redirect(session.local_path(request.form.get("back"), url_for(".workflows")))
    done, refused, last = 0, [], None
    for raw in ids[:PAGE * 10]:
        try:
            wid = uuid.UUID(raw)
            last = _act(action, wid, reason) or last
            done += 1
        except (ValueError, WorkflowNotFound, InvalidTransition) as e:
            refused.append(f"{raw[:36]}: {_why(e)}")
    seen(last)  # the positions only grow: the last one covers every change before it
    flash(f"{action.title()} accepted for {done} workflow(s).", "ok" if done else "error")
    for line in refused[:20]:
        flash(line, "error")
    return redirect(session.local_path(request.form.get("back"), url_for(".workflows")))


def _act(action: str, wid: uuid.UUID, reason: str) -> int | None:
    """The change's position in the store."""
    workflows = _system().workflows
    if action == "retry":
        return workflows.retry(wid, by=g.caller, reason=reason)
    return workflows.cancel(wid)


def _reason() -> str:
    reason = " ".join(request.form.get("reason", "").split())[:MAX_REASON]
    return reason or "operator retry from the console"


def _why(e: Exception) -> str:
    if isinstance(e, InvalidTransition):
        return f"not allowed while {e.status}"
    if isinstance(e, WorkflowNotFound):
        return "no such workflow"
    return "not a workflow id"


# --- one workflow -------------------------------------------------------------------------

@bp.get("/workflows/<raw_id>")
def workflow(raw_id: str) -> str:
    """A workflow's status, saga diagram, timeline, calls, events and the actions it allows."""
    system = _system()
    wid = parse.workflow_id(raw_id)
    view = system.views.state(str(wid))
    if view is None:
        raise WorkflowNotFound(wid)
    entries = system.views.audit(str(wid))
    definition = system.definitions.get(view["definition"], view["definitionVersion"]).definition
    states = saga.step_states(definition, entries, view["status"])
    line = saga.timeline(definition, entries, now=datetime.now(UTC))
    status = view["status"]
    waits = [s for s in definition.flat_steps if isinstance(s, Wait)]
    return render_template(
        "workflow.html", view=view, wid=str(wid), trace_id=wid.hex, definition=definition,
        diagram=svg.diagram(definition, states), timeline=svg.timeline(line),
        calls=_calls(definition, view, str(wid)), states=states,
        events=[(e, json.dumps(e.data, indent=2, sort_keys=True, default=str))
                for e in entries],
        can_retry=status in RETRYABLE or status not in TERMINAL,
        can_cancel=status not in TERMINAL and status != "COMPENSATING",
        signals=[name for w in waits for name in (w.signal, w.reject)]
        if status not in TERMINAL else [],
        live=status not in TERMINAL)


def _calls(definition: Definition, view: dict[str, Any], wid: str) -> list[dict[str, Any]]:
    """Each call the definition can make, with what a participant's logs are searched by."""
    attempts = view.get("attempts", {})
    rows = []
    for step in definition.flat_steps:
        if not isinstance(step, Step):
            continue
        actions = [(step.name, "call")] + ([(step.undo.name, "undo")] if step.undo else [])
        for action, kind in actions:
            if kind == "undo" and not attempts.get(action):
                continue
            rows.append({"step": step.name, "action": action, "kind": kind,
                         "participant": step.participant, "attempts": attempts.get(action, 0),
                         "key": f"{wid}:{action}"})
    return rows


@bp.post("/workflows/<raw_id>/<action>")
def act(raw_id: str, action: str) -> BaseResponse:
    """Retry or cancel one workflow, or send it a signal."""
    wid = parse.workflow_id(raw_id)
    back = url_for(".workflow", raw_id=str(wid))
    try:
        if action in ("retry", "cancel"):
            seen(_act(action, wid, _reason()))
            flash(f"{action.title()} accepted.", "ok")
        elif action == "signal":
            name = parse.signal_name(request.form.get("signal", ""))
            body = strict_json.loads(request.form.get("body", "").strip() or "{}",
                                     parse.MAX_DEPTH)
            if not isinstance(body, dict):
                raise strict_json.NotStrictJson("the body must be a JSON object")
            seen(_system().workflows.signal(wid, name, body))
            flash(f"Signal {name} accepted.", "ok")
        else:
            abort(404)
    except (InvalidTransition, UnknownSignal, strict_json.NotStrictJson, InvalidInput) as e:
        flash(f"Refused: {_why(e) if isinstance(e, InvalidTransition) else e}", "error")
    return redirect(back)


# --- definitions --------------------------------------------------------------------------

@bp.get("/definitions")
def definitions() -> str:
    system = _system()
    rows = []
    for name in system.definitions.names():
        latest = system.definitions.get(name)
        rows.append({"name": name, "latest": latest, "counts": system.views.counts(name)})
    return render_template("definitions.html", rows=rows, statuses=STATUSES)


@bp.get("/definitions/<name>")
def definition(name: str) -> str:
    """A definition's versions, one drawn, the count per status for each, and what changed
    between two of them."""
    system = _system()
    name = parse.definition_name(name)
    versions = system.definitions.versions(name)
    shown = _version_arg("version", len(versions)) or len(versions)
    against = _version_arg("compare", len(versions))
    if against is None and shown > 1:
        against = shown - 1
    chosen = versions[shown - 1]
    diff = None
    if against is not None and against != shown:
        diff = list(difflib.unified_diff(
            _text(versions[against - 1].definition), _text(chosen.definition),
            f"version {against}", f"version {shown}", lineterm=""))
    pending = {s.name: "pending" for s in chosen.definition.flat_steps}
    return render_template(
        "definition.html", name=name, versions=versions, chosen=chosen, against=against,
        diagram=svg.diagram(chosen.definition, pending), diff=diff,
        counts=system.views.version_counts(name), statuses=STATUSES,
        document=yaml.safe_dump(dict(chosen.definition.document), sort_keys=False,
                                allow_unicode=True))


def _version_arg(name: str, latest: int) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= latest:
        raise Problem(400, "invalid-parameter", "Invalid version",
                      f"{name} must be a version from 1 to {latest}")
    return int(raw)


def _text(definition: Definition) -> list[str]:
    return yaml.safe_dump(dict(definition.document), sort_keys=False,
                          allow_unicode=True).splitlines()


# --- health -------------------------------------------------------------------------------

@bp.get("/health")
def health() -> str:
    report = read_health(_system()).as_dict()
    points = [(p["minute"], p["started"], p["finished"]) for p in report["perMinute"]]
    return render_template("health.html", report=report, chart=svg.per_minute(points),
                           live=True)


def root() -> BaseResponse | Response:
    """`/`: a browser goes to the console; an API client gets the API's 404 as before."""
    accept = request.accept_mimetypes  # a browser asks for HTML by name, above anything else
    if accept["text/html"] > accept["application/json"]:
        return redirect(url_for("console.workflows"))
    raise Problem(404, "not-found", "Not found",
                  "nothing here: see /openapi.json, or open /console/ in a browser")
