"""The PNG chart: throughput against bare, latency, cost per workflow, and growth.

Needs matplotlib (the `bench` extra: `pip install -e '.[bench]'`); without it the chart is
skipped with a note, and the table and JSON are still written.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

Row = dict[str, Any]


def write_png(path: Path, rows: list[Row], growth: list[Row], title: str) -> str | None:
    """Draws the chart to `path`; returns why not, when it cannot."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        return "no chart: matplotlib is missing (pip install -e '.[bench]')"
    rows = [r for r in rows if r.get("throughput") is not None]
    labels = [r["label"] for r in rows]
    colors = ["0.6" if r.get("contender") == "bare" else
              "tab:blue" if r.get("backend") == "sqlite" else "tab:green" for r in rows]
    fig, axes = plt.subplots(2, 3, figsize=(17, 8.5))
    fig.suptitle(title, fontsize=10)
    _bars(axes[0][0], labels, [r["throughput"] for r in rows], colors,
          "orders completed per second (x bare)", [r.get("x_bare") for r in rows])
    _latency(axes[0][1], labels, rows)
    _bars(axes[0][2], labels, [r.get("overhead_ms_per_step") or 0 for r in rows], colors,
          "orchestration overhead per step, ms (p50)")
    ax = axes[1][0]
    own = [r.get("cpu_ms_per_wf") or 0 for r in rows]
    ax.barh(labels, own, color=colors)
    ax.barh(labels, [r.get("db_cpu_ms_per_wf") or 0 for r in rows], left=own,
            color="tab:purple")
    ax.set_xlabel("CPU ms per workflow")
    ax.invert_yaxis()
    ax.legend(handles=[Patch(color="0.6", label="bare: the client's process"),
                       Patch(color="tab:blue", label="the system's processes, SQLite"),
                       Patch(color="tab:green", label="the system's processes, PostgreSQL"),
                       Patch(color="tab:purple", label="PostgreSQL's backends")], fontsize=7)
    _bars(axes[1][1], labels, [r.get("writes_per_wf") or 0 for r in rows], colors,
          "database write transactions per workflow")
    _growth(axes[1][2], growth)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def _bars(ax: Any, labels: list[str], values: list[float], colors: list[str], xlabel: str,
          ratios: list[float | None] | None = None) -> None:
    ax.barh(labels, values, color=colors)
    for i, ratio in enumerate(ratios or []):
        if ratio is not None:
            ax.text(values[i], i, f" {ratio:.2f}x", va="center", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.invert_yaxis()


def _latency(ax: Any, labels: list[str], rows: list[Row]) -> None:
    y = range(len(rows))
    ax.barh([i - 0.2 for i in y], [r["p50_ms"] or 0 for r in rows], height=0.4, label="p50",
            color="tab:orange")
    ax.barh([i + 0.2 for i in y], [r["p99_ms"] or 0 for r in rows], height=0.4, label="p99",
            color="tab:red")
    ax.set_yticks(list(y), labels)
    ax.set_xlabel("end-to-end latency, ms")
    ax.invert_yaxis()
    ax.legend(fontsize=8)


def _growth(ax: Any, growth: list[Row]) -> None:
    if not growth:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "growth not measured", ha="center")
        return
    second = ax.twinx()
    for backend, color in (("sqlite", "tab:blue"), ("postgres", "tab:green")):
        mine = sorted((g for g in growth if g["backend"] == backend and "throughput" in g),
                      key=lambda g: g["stored"])
        if not mine:
            continue
        sizes = [g["stored"] for g in mine]
        ax.plot(sizes, [g["throughput"] for g in mine], "o-", color=color,
                label=f"{backend} orders/s")
        second.plot(sizes, [g["get_p99_ms"] for g in mine], "s--", color=color,
                    label=f"{backend} GET p99 ms")
    ax.set_xscale("log")
    ax.set_xlabel("workflows already stored")
    ax.set_ylabel("orders/s (solid)")
    second.set_ylabel("GET /workflows/{id} p99 ms (dashed)")
    ax.set_ylim(bottom=0)
    second.set_ylim(bottom=0)
    lines = ax.get_legend_handles_labels()
    more = second.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="lower left")
