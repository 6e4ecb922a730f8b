"""The results: one table on stdout, the same as JSON, the targets that can be judged here,
and what makes a run fail (an order that did not complete, an effect applied twice)."""
from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from statistics import mean
from typing import Any

Row = dict[str, Any]

MAIN_COLUMNS = [  # (title, key, format)
    ("orders/s", "throughput", ".1f"), ("x bare", "x_bare", ".2f"),
    ("p50 ms", "p50_ms", ".0f"), ("p99 ms", "p99_ms", ".0f"),
    ("ovh ms/step", "overhead_ms_per_step", ".1f"), ("cpu ms/wf", "cpu_ms_per_wf", ".1f"),
    ("cores", "cpu_share", ".2f"), ("api cpu", "api_cpu_ms_per_wf", ".1f"),
    ("worker cpu", "worker_cpu_ms_per_wf", ".1f"), ("db cpu ms/wf", "db_cpu_ms_per_wf", ".1f"),
    ("writes/wf", "writes_per_wf", ".2f"),
    ("peak MiB", "peak_worker_mib", ".0f"), ("stub cpu", "stub_cpu_share", ".2f"),
    ("machine", "machine_busy", ".2f"),
]
CALM_COLUMNS = [
    ("orders/s", "throughput", ".1f"), ("p50 ms", "p50_ms", ".0f"), ("p99 ms", "p99_ms", ".0f"),
    ("participants ms", "participants_ms", ".0f"), ("ovh ms/step", "overhead_ms_per_step", ".1f"),
    ("cpu ms/wf", "cpu_ms_per_wf", ".1f"),
]
GROWTH_COLUMNS = [
    ("orders/s", "throughput", ".1f"), ("x smallest", "x_throughput", ".2f"),
    ("GET p50 ms", "get_p50_ms", ".2f"), ("GET p99 ms", "get_p99_ms", ".2f"),
    ("x smallest", "x_get_p99", ".2f"), ("views ev/s", "catchup_events_per_s", ".0f"),
    ("preload ev/s", "preload_events_per_s", ".0f"),
    ("rebuild ev/s", "rebuild_events_per_s", ".0f"),
    ("replay s", "audit_replay_s", ".1f"),
]
CONSOLE_PAIRS = [  # (title, console key, API key): the console's page, the API's same data
    ("list", "console_list", "api_list"),
    ("workflow (200 events)", "console_workflow", "api_audit"),
]
INFLIGHT_COLUMNS = [
    ("orders", "accepted", ".0f"), ("seconds", "seconds", ".1f"), ("bound s", "bound_s", ".1f"),
    ("start s", "start_s", ".1f"), ("cpu s", "cpu_s", ".1f"),
    ("threads before", "threads_before", ".0f"), ("threads max", "threads_max", ".0f"),
    ("peak MiB", "peak_mib", ".0f"), ("KiB/order", "kib_per_order", ".1f"),
    ("completed", "completed", ".0f"), ("duplicates", "duplicates", ".0f"),
]
CONSOLE_COLUMNS = [
    ("console p50", "console_p50", ".1f"), ("api p50", "api_p50", ".1f"),
    ("x api", "x_p50", ".2f"), ("console p99", "console_p99", ".1f"),
    ("api p99", "api_p99", ".1f"), ("x api", "x_p99", ".2f"), ("samples", "n", "d"),
    ("page KiB", "kib", ".0f"),
]


def finish(rows: list[Row], growth: list[Row]) -> None:
    """Adds the ratios: to the mean of the bare runs, and to the smallest store's figures."""
    bare = [r["throughput"] for r in rows
            if r.get("contender") == "bare" and r.get("throughput")]
    base = mean(bare) if bare else None
    for r in rows:
        if base and r.get("throughput") is not None:
            r["x_bare"] = r["throughput"] / base
        peak = r.get("peak_mib")
        if isinstance(peak, dict):
            r["peak_worker_mib"] = peak.get("worker")
    for backend in {g["backend"] for g in growth}:
        mine = sorted((g for g in growth if g["backend"] == backend), key=lambda g: g["stored"])
        first = mine[0]
        for g in mine:
            if first.get("throughput") and g.get("throughput") is not None:
                g["x_throughput"] = g["throughput"] / first["throughput"]
            if first.get("get_p99_ms") and g.get("get_p99_ms") is not None:
                g["x_get_p99"] = g["get_p99_ms"] / first["get_p99_ms"]


def _cells(row: Row, columns: list[tuple[str, str, str]]) -> str:
    out = ""
    for title, key, fmt in columns:
        value = row.get(key)
        text = format(value, fmt) if isinstance(value, (int, float)) else "-"
        out += f"{text:>{len(title) + 2}}"
    return out


def _titles(columns: list[tuple[str, str, str]]) -> str:
    return "".join(f"{title:>{len(title) + 2}}" for title, _, _ in columns)


def table(rows: list[Row], calm: list[Row], growth: list[Row], meta: dict[str, Any],
          inflight: Sequence[Row] = ()) -> str:
    """The text table printed at the end of a run."""
    head = (f"orders={meta['orders']} concurrency={meta['concurrency']} "
            f"latency_ms={meta['latency_ms']:g} cores={meta['machine']['cores']} "
            f"python={meta['machine']['python']} postgres={meta['machine'].get('postgres')}")
    lines = [head, "", f"{'contender':<24}{_titles(MAIN_COLUMNS)}  outcomes"]
    for r in rows:
        outcome = json.dumps(r.get("outcomes", r.get("error")))
        lines.append(f"{r['label']:<24}{_cells(r, MAIN_COLUMNS)}  {outcome}")
    if calm:
        lines += ["", f"{'concurrency 1':<24}{_titles(CALM_COLUMNS)}"]
        lines += [f"{r['label']:<24}{_cells(r, CALM_COLUMNS)}" for r in calm]
    if growth:
        lines += ["", f"{'growth':<24}{_titles(GROWTH_COLUMNS)}"]
        for g in growth:
            name = f"{g['backend']} {g['stored']:,} stored"
            lines.append(f"{name:<24}{_cells(g, GROWTH_COLUMNS)}")
        for g in growth:
            for key in ("rebuild_note", "audit_replay_note", "error"):
                if g.get(key):
                    lines.append(f"  {g['backend']} {g['stored']:,}: {g[key]}")
        lines += console_table(growth)
    if inflight:
        lines += ["", f"{'in flight':<40}{_titles(INFLIGHT_COLUMNS)}"]
        for r in inflight:
            lines.append(f"{r['label']:<40}{_cells(r, INFLIGHT_COLUMNS)}"
                         + (f"  {r['error']}" if r.get("error") else ""))
    lines += ["", *[f"target: {t}" for t in targets(rows, growth, inflight)]]
    lines += [f"note: {n}" for n in meta.get("notes", [])]
    return "\n".join(lines)


def console_table(growth: list[Row]) -> list[str]:
    """The console's pages against the API's answers for the same data, ms, per growth row;
    `x api` is the console's figure over the API's."""
    measured = [g for g in growth if any(f"{c}_n" in g for _, c, _ in CONSOLE_PAIRS)]
    if not measured:
        return []
    lines = ["", f"{'console vs API, ms':<44}{_titles(CONSOLE_COLUMNS)}"]
    for g in measured:
        for title, console, api in CONSOLE_PAIRS:
            cells = {"console_p50": g.get(f"{console}_p50_ms"),
                     "api_p50": g.get(f"{api}_p50_ms"), "x_p50": g.get(f"{console}_x_api_p50"),
                     "console_p99": g.get(f"{console}_p99_ms"),
                     "api_p99": g.get(f"{api}_p99_ms"), "x_p99": g.get(f"{console}_x_api_p99"),
                     "n": g.get(f"{console}_n"),
                     "kib": g[f"{console}_bytes"] / 1024 if g.get(f"{console}_bytes") else None}
            name = f"{g['backend']} {g['stored']:,} stored, {title}"
            lines.append(f"{name:<44}{_cells(cells, CONSOLE_COLUMNS)}")
    lines += [f"  {g['backend']} {g['stored']:,}: {problem}"
              for g in measured for problem in console_problems(g)]
    return lines


def console_problems(g: Row) -> list[str]:
    """The console's and the API's answers other than 200 in growth row `g` (0: none came)."""
    out = []
    for _, console, api in CONSOLE_PAIRS:
        for key, path in ((console, "console"), (api, "API")):
            if g.get(f"{key}_non_200"):
                out.append(f"{path} {key.split('_', 1)[1]}: answers other than 200 (status: "
                           f"count) {g[f'{key}_non_200']}")
    return out


def targets(rows: list[Row], growth: list[Row], inflight: Sequence[Row] = ()) -> list[str]:
    """The issue's targets that this run can judge (the DBOS ratios come from compare.sh)."""
    bare = [r for r in rows if r.get("contender") == "bare" and r.get("p99_ms")]
    bare_p99 = mean(r["p99_ms"] for r in bare) if bare else None
    out = []
    for r in rows:
        if r.get("contender") != "system" or r.get("x_bare") is None or not bare_p99:
            continue
        postgres = r.get("backend") == "postgres"
        floor, cpu_cap = (0.6, 5.0) if postgres else (0.7, 4.0)
        ok = r["x_bare"] >= floor and r["cpu_ms_per_wf"] <= cpu_cap and (
            not postgres or r["p99_ms"] <= 2 * bare_p99)
        out.append(f"{r['label']}: throughput {r['x_bare']:.2f}x bare (>= {floor}), p99 "
                   f"{r['p99_ms'] / bare_p99:.2f}x bare's" + (" (<= 2)" if postgres else "")
                   + f", cpu {r['cpu_ms_per_wf']:.1f} ms/wf (<= {cpu_cap:g}"
                   + (" plus the database's" if postgres else "") + "): "
                   + ("met" if ok else "NOT met"))
    for r in inflight:
        if r.get("bound_s") is not None:
            own = 3 * r["latency_ms"] / 1e3
            out.append(f"{r['label']}: all ended in {r['seconds']:.1f} s (<= {r['bound_s']:.1f}, "
                       f"1.5x max({own:g} s, cpu s / cores)), {r['threads_max']} threads at most: "
                       f"{'met' if r['met'] else 'NOT met'}")
    for g in growth:
        if g.get("x_throughput") is not None and g.get("x_get_p99") is not None and \
                g["stored"] != min(x["stored"] for x in growth if x["backend"] == g["backend"]):
            ok = g["x_throughput"] >= 1 / 1.25 and g["x_get_p99"] <= 2
            out.append(f"{g['backend']} growth to {g['stored']:,}: throughput "
                       f"{g['x_throughput']:.2f}x (>= 0.80), GET p99 {g['x_get_p99']:.2f}x "
                       f"(<= 2): {'met' if ok else 'NOT met'}")
    return out


def failures(rows: list[Row], growth: list[Row], inflight: Sequence[Row] = ()) -> list[str]:
    """Why this run is not to be trusted: orders that did not complete, duplicated effects,
    contenders that failed."""
    out = []
    for r in inflight:
        if r.get("error"):
            out.append(f"{r['label']}: {r['error']}")
        elif r["completed"] != r["orders"] or r["duplicates"]:
            out.append(f"{r['label']}: the stub saw {r['completed']} of {r['orders']} orders "
                       f"completed, {r['duplicates']} duplicate effects")
    for r in [*rows, *growth]:
        name = r.get("label") or f"{r['backend']} growth {r['stored']}"
        if r.get("error"):
            out.append(f"{name}: {r['error']}")
            continue
        outcomes = r.get("outcomes", {})
        if outcomes.get("COMPLETED", 0) != r.get("orders"):
            out.append(f"{name}: {r.get('orders')} orders, outcomes {outcomes}")
        if r.get("stub_duplicates"):
            out.append(f"{name}: the stub saw {r['stub_duplicates']} duplicate effects")
        if r.get("stub_completed") is not None and r["stub_completed"] != r.get("orders"):
            out.append(f"{name}: the stub saw {r['stub_completed']} orders completed")
        out += [f"{name}: {problem}" for problem in console_problems(r)]
        for key in ("rebuild_note", "audit_replay_note"):
            if str(r.get(key, "")).startswith("exited"):
                out.append(f"{name}: {key.removesuffix('_note').replace('_', ' ')} {r[key]}")
    return out


def machine(pg_version: str | None) -> dict[str, Any]:
    """The machine the run was on."""
    mem = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal:")), 0)
    return {"cores": os.cpu_count(), "memory_gib": round(mem / 2**20, 1),
            "python": platform.python_version(), "postgres": pg_version,
            "platform": platform.platform()}


def write_json(path: Path, rows: list[Row], calm: list[Row], growth: list[Row],
               meta: dict[str, Any], inflight: Sequence[Row] = ()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"meta": {**meta, "finished": datetime.now(UTC).isoformat()},
                "rows": rows, "concurrency_1": calm, "growth": growth,
                "in_flight": list(inflight), "targets": targets(rows, growth, inflight)}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
