"""The console's drawings as SVG text: a definition's saga diagram, a workflow's timeline, and
a per-minute bar chart.

Deterministic (the same input gives the same bytes) and self-contained: each drawing carries
its title, description and legend, and its colours twice, as CSS classes (`state-done`,
`kind-undo`, `outcome-retry`...) for the page's stylesheet to restyle, and as inline fill and
stroke so that it reads right on its own. Every text is escaped. Text is dark on light (WCAG AA,
4.5:1 and more); a step's state is written on its node, and every bar and mark names itself in
its title, so that colour is never the only way to tell. The root `<svg>` has a natural size
and scales down to its container (`max-width:100%`), for a phone.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from datetime import datetime

from markupsafe import escape

from console.saga import STATES, Bar, Mark, Timeline
from domain.definitions import Definition, Parallel, Step, Wait

NS = "http://www.w3.org/2000/svg"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
INK = "#1f2328"  # 14:1 and more on every fill below
MUTED = "#57606a"  # 5.2:1 and more on every fill below
GRID = "#d0d7de"
PAPER = "#ffffff"

# state -> (fill, stroke): pale fills under dark text, strokes at least 4.4:1 on their fill
STATE_COLOURS = {
    "done": ("#dcfce7", "#15803d"), "skipped": ("#f3f4f6", "#6b7280"),
    "running": ("#dbeafe", "#1d4ed8"), "waiting": ("#fef3c7", "#b45309"),
    "failed": ("#fee2e2", "#b91c1c"), "undone": ("#ede9fe", "#6d28d9"),
    "doubt": ("#ffedd5", "#c2410c"), "owed": ("#fce7f3", "#be185d"),
    "pending": (PAPER, "#6b7280"),
}
# (kind, outcome) -> (fill, stroke); an outcome a kind never has falls back to the kind's "ok"
BAR_COLOURS = {
    ("call", "ok"): ("#15803d", "#14532d"), ("call", "retry"): ("#d97706", "#92400e"),
    ("call", "failed"): ("#b91c1c", "#7f1d1d"), ("call", "doubt"): ("#9a3412", "#431407"),
    ("call", "running"): ("#2563eb", "#1e3a8a"),
    ("undo", "ok"): ("#6d28d9", "#3b0764"), ("undo", "retry"): ("#9333ea", "#581c87"),
    ("undo", "failed"): ("#3b0764", "#b91c1c"), ("undo", "doubt"): ("#581c87", "#c2410c"),
    ("undo", "running"): ("#7c3aed", "#3b0764"),
    ("backoff", "retry"): ("#fef3c7", "#b45309"),
    ("wait", "signalled"): ("#0f766e", "#134e4a"), ("wait", "waiting"): ("#99f6e4", "#0f766e"),
    ("wait", "timeout"): ("#b91c1c", "#7f1d1d"), ("wait", "failed"): ("#b91c1c", "#7f1d1d"),
}
BAR_WORDS = {
    ("call", "ok"): "call succeeded", ("call", "retry"): "call failed, retried",
    ("call", "failed"): "call failed for good", ("call", "doubt"): "call in doubt",
    ("call", "running"): "call under way", ("undo", "ok"): "undo succeeded",
    ("undo", "retry"): "undo failed, retried", ("undo", "failed"): "undo failed for good",
    ("undo", "doubt"): "undo in doubt", ("undo", "running"): "undo under way",
    ("backoff", "retry"): "backoff before a retry", ("wait", "signalled"): "wait, signalled",
    ("wait", "waiting"): "waiting for a signal", ("wait", "timeout"): "wait timed out",
    ("wait", "failed"): "wait ended without its signal",
}
MARK_COLOURS = {"signal": "#0f766e", "retry": "#b45309", "cancel": "#b91c1c",
                "started": INK, "ended": INK}
MARK_WORDS = {"signal": "signal", "retry": "operator retry", "cancel": "cancel request",
              "started": "started", "ended": "ended"}
SERIES = (("started", "#2563eb", "#1e3a8a"), ("finished", "#15803d", "#14532d"))


# --- the saga diagram ---------------------------------------------------------------------------

NODE_W, LINE_H, GAP, PAD = 164, 15, 40, 16
CHARS = 24  # what fits on a node's line at 11-12 px


def diagram(definition: Definition, states: Mapping[str, str]) -> str:
    """The definition's steps left to right, parallel branches stacked in one column inside a
    bracket; each step coloured and named by its state (`pending` where `states` says none)."""
    columns = [node.branches if isinstance(node, Parallel) else (node,)
               for node in definition.steps]
    heights = [[_node_height(s) for s in column] for column in columns]
    column_h = [sum(h) + 12 * (len(h) - 1) for h in heights]
    inner_h = max(column_h, default=40)
    col_w = NODE_W + 2 * 12  # room for a parallel group's bracket on either side
    width = max(PAD * 2 + len(columns) * col_w + (len(columns) - 1) * GAP, 320)
    top = PAD + 14  # room for the "parallel" caption
    mid = top + inner_h / 2
    body: list[str] = []
    used: list[str] = []
    for i, (column, column_hs) in enumerate(zip(columns, heights, strict=True)):
        x = PAD + i * (col_w + GAP)
        if i:
            body.append(_arrow(x - GAP + 2, x + 10, mid))
        y = mid - column_h[i] / 2
        if len(column) > 1:
            body.append(_bracket(x, y - 6, col_w, column_h[i] + 12))
        for step, h in zip(column, column_hs, strict=True):
            state = states.get(step.name, "pending")
            used.append(state)
            body.append(_node(step, state, x + 12, y, h))
            y += h + 12
    legend_y = top + inner_h + 24
    entries = [_swatch_rect(f"state-{s}", *STATE_COLOURS[s], s) for s in STATES if s in used]
    steps = definition.flat_steps
    if any(s.when is not None for s in steps):
        entries.append(("when", "runs only if its condition holds", _legend_when()))
    if any(isinstance(s, Wait) for s in steps):
        entries.append(("wait", "waits for a signal", _legend_wait()))
    if any(isinstance(n, Parallel) for n in definition.steps):
        entries.append(("parallel", "runs at once", _legend_parallel()))
    legend, legend_h = _legend(entries, PAD, legend_y, width - 2 * PAD)
    height = legend_y + legend_h + PAD
    counts = {s: used.count(s) for s in STATES if s in used}
    desc = (f"{len(steps)} steps of {definition.name}, left to right: "
            + ", ".join(f"{s.name} {states.get(s.name, 'pending')}" for s in steps)
            + ". " + ", ".join(f"{n} {s}" for s, n in counts.items()) + ".")
    return _svg("saga-diagram", width, height, f"Saga {definition.name}", desc,
                [*body, legend])


def _lines(step: Step | Wait, state: str) -> list[tuple[str, str]]:
    """A node's lines of text: (class, text), the step's name first."""
    lines = [("name", step.name), ("state", state)]
    if isinstance(step, Wait):
        lines.append(("detail", f"signal: {step.signal}"))
    else:
        lines.append(("detail", f"→ {step.participant}"))
        if step.undo is not None:
            lines.append(("detail", f"undo: {step.undo.name}"))
    if step.when is not None:
        lines.append(("detail", f"when: {step.when.text}"))
    return lines


def _node_height(step: Step | Wait) -> int:
    return 12 + LINE_H * len(_lines(step, "")) + 4


def _node(step: Step | Wait, state: str, x: float, y: float, h: int) -> str:
    fill, stroke = STATE_COLOURS.get(state, STATE_COLOURS["pending"])
    dash = ' stroke-dasharray="5 3"' if step.when is not None else ""
    paint = f'fill="{fill}" stroke="{stroke}" stroke-width="2"{dash}'
    if isinstance(step, Wait):
        cut = 12
        points = " ".join(f"{px:g},{py:g}" for px, py in (
            (x + cut, y), (x + NODE_W - cut, y), (x + NODE_W, y + h / 2),
            (x + NODE_W - cut, y + h), (x + cut, y + h), (x, y + h / 2)))
        shape = f'<polygon class="shape" points="{points}" {paint}/>'
        indent = cut
    else:
        shape = (f'<rect class="shape" x="{x:g}" y="{y:g}" width="{NODE_W}" height="{h}" '
                 f'rx="6" {paint}/>')
        indent = 8
    texts = []
    for n, (kind, text) in enumerate(_lines(step, state)):
        weight = ' font-weight="600"' if kind == "name" else ""
        style = ' font-style="italic"' if kind == "state" else ""
        colour = INK if kind != "detail" else MUTED
        size = 13 if kind == "name" else 11
        texts.append(_text(x + indent, y + 16 + n * LINE_H, text, f"label {kind}", colour,
                           size, CHARS - (1 if indent > 8 else 0), weight + style))
    name, kind = _e(step.name), "wait" if isinstance(step, Wait) else "call"
    return (f'<g class="step {kind} state-{_e(state)}" data-step="{name}" '
            f'data-state="{_e(state)}" tabindex="0"><title>{name}: {_e(state)}</title>'
            f'{shape}{"".join(texts)}</g>')


def _arrow(x0: float, x1: float, y: float) -> str:
    return (f'<g class="arrow" aria-hidden="true"><line x1="{x0:g}" y1="{y:g}" '
            f'x2="{x1 - 6:g}" y2="{y:g}" stroke="{MUTED}" stroke-width="1.5"/>'
            f'<polygon points="{x1:g},{y:g} {x1 - 7:g},{y - 4:g} {x1 - 7:g},{y + 4:g}" '
            f'fill="{MUTED}"/></g>')


def _bracket(x: float, y: float, w: float, h: float) -> str:
    right = x + w
    return (f'<g class="parallel" aria-hidden="true">'
            f'<path d="M{x + 8:g},{y:g} H{x:g} V{y + h:g} H{x + 8:g} '
            f'M{right - 8:g},{y:g} H{right:g} V{y + h:g} H{right - 8:g}" fill="none" '
            f'stroke="{MUTED}" stroke-width="1.5"/>'
            f'<text x="{x:g}" y="{y - 4:g}" font-size="11" fill="{MUTED}">parallel</text></g>')


def _legend_when() -> str:
    return (f'<rect x="0" y="2" width="16" height="12" rx="2" fill="{PAPER}" stroke="{MUTED}" '
            f'stroke-width="1.5" stroke-dasharray="4 2"/>')


def _legend_wait() -> str:
    return (f'<polygon points="4,2 12,2 16,8 12,14 4,14 0,8" fill="{PAPER}" stroke="{MUTED}" '
            f'stroke-width="1.5"/>')


def _legend_parallel() -> str:
    return (f'<path d="M5,1 H1 V15 H5 M11,1 H15 V15 H11" fill="none" stroke="{MUTED}" '
            f'stroke-width="1.5"/>')


# --- the timeline ------------------------------------------------------------------------------

LABEL_W, RIGHT, AXIS_H, LANE_H, BAR_H = 124, 20, 34, 28, 14


def timeline(tl: Timeline, width: int = 960) -> str:
    """A lane per step (its name on the left), time running right from the workflow's start in
    seconds; a bar per attempt, backoff and wait; a marked line per signal, operator request,
    start and end."""
    plot_w = max(width - LABEL_W - RIGHT, 100)
    span = max((tl.end - tl.start).total_seconds(), 0.0)
    scale_s = span if span > 0 else 1.0
    step = _nice(scale_s / max(plot_w // 90, 1))

    def x_of(moment: datetime) -> float:
        return LABEL_W + (moment - tl.start).total_seconds() / scale_s * plot_w

    lanes_h = max(len(tl.lanes), 1) * LANE_H
    bottom = AXIS_H + lanes_h
    body: list[str] = ['<g class="axis">']
    for n in range(int(scale_s / step + 1e-9) + 1):
        seconds = n * step
        x = LABEL_W + seconds / scale_s * plot_w
        body.append(f'<line class="tick" x1="{x:.1f}" y1="{AXIS_H - 6}" x2="{x:.1f}" '
                    f'y2="{bottom}" stroke="{GRID}" stroke-width="1"/>')
        body.append(f'<text x="{x:.1f}" y="{AXIS_H - 10}" font-size="11" fill="{MUTED}" '
                    f'text-anchor="middle">{_e(_seconds(seconds))}</text>')
    body.append(f'<line x1="{LABEL_W}" y1="{AXIS_H}" x2="{LABEL_W + plot_w}" y2="{AXIS_H}" '
                f'stroke="{MUTED}" stroke-width="1"/></g>')
    lane_y = {lane: AXIS_H + i * LANE_H for i, lane in enumerate(tl.lanes)}
    for lane, y in lane_y.items():
        body.append(f'<g class="lane" data-lane="{_e(lane)}">'
                    f'<line x1="{LABEL_W}" y1="{y + LANE_H}" x2="{LABEL_W + plot_w}" '
                    f'y2="{y + LANE_H}" stroke="{GRID}" stroke-width="0.5"/>'
                    + _text(LABEL_W - 8, y + LANE_H / 2 + 4, lane, "lane-label", INK, 12, 18,
                            ' text-anchor="end"') + '</g>')
    for bar in tl.bars:
        body.append(_bar(bar, x_of(bar.start), x_of(bar.end), lane_y.get(bar.lane, AXIS_H)))
    for mark in tl.marks:
        body.append(_mark(mark, x_of(mark.at), AXIS_H, bottom))
    present = list(dict.fromkeys((b.kind, b.outcome) for b in tl.bars))
    entries = [_swatch_rect(f"kind-{k} outcome-{o}", *BAR_COLOURS[(k, o)], BAR_WORDS[(k, o)],
                            dashed=k == "backoff")
               for k, o in BAR_WORDS if (k, o) in present]
    entries += [(f"mark kind-{kind}", MARK_WORDS[kind], _legend_mark(kind))
                for kind in MARK_WORDS if any(m.kind == kind for m in tl.marks)]
    legend, legend_h = _legend(entries, 8, bottom + 16, width - 16)
    height = bottom + 16 + legend_h + 8
    outcomes: dict[str, int] = {}
    for bar in tl.bars:
        outcomes[f"{bar.kind} {bar.outcome}"] = outcomes.get(f"{bar.kind} {bar.outcome}", 0) + 1
    desc = (f"{len(tl.lanes)} lanes ({', '.join(tl.lanes) or 'none'}) over "
            f"{_seconds(round(span, 3))}: {len(tl.bars)} bars ("
            + (", ".join(f"{n} {k}" for k, n in outcomes.items()) or "none")
            + f"), {len(tl.marks)} marks.")
    return _svg("saga-timeline", width, height, "Timeline of the workflow's calls", desc,
                [*body, legend])


def _bar(bar: Bar, x0: float, x1: float, lane_y: float) -> str:
    fill, stroke = BAR_COLOURS.get((bar.kind, bar.outcome),
                                   BAR_COLOURS.get((bar.kind, "ok"), ("#6b7280", INK)))
    thin = bar.kind == "backoff"  # pale, thinner and dashed: time passing, not a call
    h = BAR_H / 2 if thin else BAR_H
    y = lane_y + (LANE_H - h) / 2
    dash = ' stroke-dasharray="3 2"' if thin else ""
    return (f'<rect class="bar kind-{_e(bar.kind)} outcome-{_e(bar.outcome)}" '
            f'data-lane="{_e(bar.lane)}" data-kind="{_e(bar.kind)}" '
            f'data-outcome="{_e(bar.outcome)}" data-attempt="{bar.attempt}" tabindex="0" '
            f'x="{x0:.1f}" y="{y:g}" width="{max(x1 - x0, 2.0):.1f}" height="{h:g}" rx="2" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="1"{dash}>'
            f'{_title(bar.label, bar.detail)}</rect>')


def _title(label: str, detail: tuple[tuple[str, str], ...]) -> str:
    """A drawn item's detail, one line each, for hover, focus and screen readers."""
    lines = "\n".join([label, *(f"{k}: {v}" for k, v in detail)])
    return f"<title>{_e(lines)}</title>"


def _mark(mark: Mark, x: float, top: float, bottom: float) -> str:
    colour = MARK_COLOURS.get(mark.kind, INK)
    return (f'<g class="mark kind-{_e(mark.kind)}" data-kind="{_e(mark.kind)}" tabindex="0">'
            f'{_title(mark.label, mark.detail)}'
            f'<line x1="{x:.1f}" y1="{top - 2:g}" x2="{x:.1f}" y2="{bottom:g}" '
            f'stroke="{colour}" stroke-width="1.5" stroke-dasharray="4 2"/>'
            f'<polygon points="{x - 5:.1f},{top - 8:g} {x + 5:.1f},{top - 8:g} '
            f'{x:.1f},{top - 1:g}" fill="{colour}" stroke="{colour}"/></g>')


def _legend_mark(kind: str) -> str:
    colour = MARK_COLOURS[kind]
    return (f'<line x1="8" y1="2" x2="8" y2="16" stroke="{colour}" stroke-width="1.5" '
            f'stroke-dasharray="4 2"/><polygon points="3,0 13,0 8,6" fill="{colour}"/>')


# --- the per-minute chart ------------------------------------------------------------------

def per_minute(points: Sequence[tuple[str, int, int]], width: int = 720) -> str:
    """Workflows started and finished per minute (`(HH:MM, started, finished)`, oldest
    first): two bars a minute, a count axis on the left, minutes below."""
    left, right, top, plot_h = 44, 12, 28, 160
    plot_w = max(width - left - right, 100)
    bottom = top + plot_h
    peak = max((max(s, f) for _, s, f in points), default=0)
    step = max(1, int(_nice(max(peak, 1) / 5)))
    y_max = step * max(math.ceil(peak / step), 1)
    body = ['<g class="axis">']
    for value in range(0, y_max + 1, step):
        y = bottom - value / y_max * plot_h
        body.append(f'<line class="tick" x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" '
                    f'y2="{y:.1f}" stroke="{GRID}" stroke-width="1"/>'
                    f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" fill="{MUTED}" '
                    f'text-anchor="end">{value}</text>')
    body.append(f'<line x1="{left}" y1="{bottom}" x2="{left + plot_w}" y2="{bottom}" '
                f'stroke="{MUTED}" stroke-width="1"/></g>')
    group = plot_w / max(len(points), 1)
    every = max(1, math.ceil(len(points) * 44 / plot_w))  # a label each ~44 px at most
    for i, (minute, *counts) in enumerate(points):
        x = left + i * group
        bar_w = max(group * 0.38, 1.0)
        for n, ((series, fill, stroke), value) in enumerate(zip(SERIES, counts, strict=True)):
            h = value / y_max * plot_h
            bx = x + group * 0.1 + n * bar_w
            body.append(f'<rect class="bar series-{series}" data-minute="{_e(minute)}" '
                        f'data-series="{series}" data-value="{value}" x="{bx:.1f}" '
                        f'y="{bottom - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                        f'fill="{fill}" stroke="{stroke}" stroke-width="0.5">'
                        f'<title>{_e(minute)}: {value} {series}</title></rect>')
        if i % every == 0:
            body.append(f'<text x="{x + group / 2:.1f}" y="{bottom + 14}" font-size="11" '
                        f'fill="{MUTED}" text-anchor="middle">{_e(minute)}</text>')
    if not points:
        body.append(f'<text x="{left + plot_w / 2:g}" y="{top + plot_h / 2:g}" font-size="12" '
                    f'fill="{MUTED}" text-anchor="middle">no workflows in this period</text>')
    entries = [_swatch_rect(f"series-{s}", fill, stroke, s) for s, fill, stroke in SERIES]
    legend, legend_h = _legend(entries, left, bottom + 26, plot_w)
    height = bottom + 26 + legend_h + 8
    started, finished = sum(p[1] for p in points), sum(p[2] for p in points)
    span = f"from {points[0][0]} to {points[-1][0]}" if points else "no minutes"
    desc = (f"Workflows started and finished per minute, {span}: {started} started, "
            f"{finished} finished; at most {peak} in a minute.")
    return _svg("saga-per-minute", width, height, "Workflows per minute", desc,
                [*body, legend])


# --- shared --------------------------------------------------------------------------------

def _svg(kind: str, width: float, height: float, title: str, desc: str,
         body: list[str]) -> str:
    """The document around `body`; its ids are derived from its content, so that several
    drawings on a page do not clash and the same drawing keeps its ids."""
    content = "".join(body)
    uid = f"{kind}-" + hashlib.sha256((title + desc + content).encode()).hexdigest()[:10]
    return (f'<svg xmlns="{NS}" class="{kind}" viewBox="0 0 {width:g} {height:g}" '
            f'width="{width:g}" height="{height:g}" style="max-width:100%;height:auto" '
            f'role="img" aria-labelledby="{uid}-title {uid}-desc" font-family="{FONT}" '
            f'font-size="12"><title id="{uid}-title">{_e(title)}</title>'
            f'<desc id="{uid}-desc">{_e(desc)}</desc>'
            f'<rect class="paper" width="100%" height="100%" fill="{PAPER}"/>{content}</svg>')


def _legend(entries: list[tuple[str, str, str]], x: float, y: float,
            width: float) -> tuple[str, float]:
    """Legend entries (the classes of what they explain, words, a 16x16 symbol) in rows that
    wrap at `width`; the group and its height."""
    parts, cx, cy = ['<g class="legend">'], 0.0, 0.0
    for key, words, symbol in entries:
        w = 24 + 6.5 * len(words) + 16
        if cx and cx + w > width:
            cx, cy = 0.0, cy + 22
        parts.append(f'<g class="legend-item" data-key="{_e(key)}" '
                     f'transform="translate({x + cx:g},{y + cy:g})">{symbol}'
                     f'<text x="22" y="12" font-size="11" fill="{INK}">{_e(words)}</text></g>')
        cx += w
    parts.append("</g>")
    return "".join(parts), (cy + 18 if entries else 0)


def _swatch_rect(classes: str, fill: str, stroke: str, words: str,
                 dashed: bool = False) -> tuple[str, str, str]:
    dash = ' stroke-dasharray="3 2"' if dashed else ""
    symbol = (f'<rect class="swatch {_e(classes)}" x="0" y="2" width="16" height="12" rx="2" '
              f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"{dash}/>')
    return classes, words, symbol


def _text(x: float, y: float, text: str, cls: str, colour: str, size: int, fits: int,
          extra: str = "") -> str:
    """A text, cut to `fits` characters with an ellipsis; a cut one keeps its full text in
    a title (hover, screen readers)."""
    shown = text if len(text) <= fits else text[:fits - 1] + "…"
    full = f"<title>{_e(text)}</title>" if shown != text else ""
    return (f'<text class="{cls}" x="{x:g}" y="{y:g}" font-size="{size}" fill="{colour}"'
            f'{extra}>{full}{_e(shown)}</text>')


def _nice(raw: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least `raw`."""
    if raw <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw * (1 - 1e-9):
            return factor * power
    return 10 * power


def _seconds(value: float) -> str:
    """A tick's label: `0 s`, `1.5 s`, `120 s`."""
    text = f"{round(value, 6):.6f}".rstrip("0").rstrip(".")
    return f"{text} s"


def _e(text: object) -> str:
    return str(escape(str(text)))
