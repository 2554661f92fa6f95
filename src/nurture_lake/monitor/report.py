"""The monitoring report: one HTML page with PNG plots under ``<report_root>/monitor``.

Built from ``global.gold.policy_health``, the latest run of ``global.gold.feature_drift``,
``global.ops.stream_metrics`` and the SLO results. Plots use matplotlib's Agg backend (no display).

Example::

    path = write_report(spark, lake, slos=check_slos(spark, lake, settings))
    # <report_root>/monitor/index.html referencing reward.png, exploration.png, ...
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: clusters and CI have no display

import matplotlib.pyplot as plt  # noqa: E402
from pyspark.sql import Row, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from nurture_lake.monitor.drift import feature_drift_table  # noqa: E402
from nurture_lake.monitor.health import policy_health_table  # noqa: E402
from nurture_lake.monitor.listener import stream_metrics_table  # noqa: E402
from nurture_lake.monitor.settings import MonitorSettings  # noqa: E402
from nurture_lake.monitor.slo import SloResult  # noqa: E402
from nurture_lake.tables import Lake  # noqa: E402

__all__ = ["report_dir", "write_report"]

_Plot = tuple[str, str]  # (file name, caption)


def report_dir(lake: Lake) -> Path:
    """``<report_root>/monitor``."""
    return lake.reports() / "monitor"


def _rows(spark: SparkSession, lake: Lake) -> tuple[list[Row], list[Row], list[Row]]:
    health_ref, drift_ref, stream_ref = policy_health_table(lake), feature_drift_table(lake), stream_metrics_table(lake)
    health = health_ref.read(spark).orderBy("day", "region", "model_version").collect() if health_ref.exists(spark) else []
    drift: list[Row] = []
    if drift_ref.exists(spark):
        frame = drift_ref.read(spark)
        latest = frame.agg(F.max("run_at")).first()
        if latest is not None and latest[0] is not None:
            drift = frame.where(F.col("run_at") == F.lit(latest[0])).orderBy("region", "feature").collect()
    streams = (
        stream_ref.read(spark).where(F.col("event") == "progress").orderBy("timestamp").collect()
        if stream_ref.exists(spark) else []
    )
    return health, drift, streams


def _series(health: Sequence[Row], value: Callable[[Row], float | None]) -> dict[str, tuple[list[Any], list[float]]]:
    """``{"region/model_version": (days, values)}`` skipping missing values."""
    out: dict[str, tuple[list[Any], list[float]]] = defaultdict(lambda: ([], []))
    for row in health:
        v = value(row)
        if v is not None:
            days, values = out[f"{row['region']}/{row['model_version']}"]
            days.append(row["day"])
            values.append(float(v))
    return dict(out)


def _save(fig: Any, folder: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(folder / name, dpi=90)
    plt.close(fig)
    return name


def _line_plot(folder: Path, name: str, title: str, ylabel: str,
               series: dict[str, tuple[list[Any], list[float]]], *, hline: float | None = None) -> str | None:
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for label, (days, values) in sorted(series.items()):
        ax.plot(days, values, marker="o", label=label)
    if hline is not None:
        ax.axhline(hline, color="red", linestyle="--", linewidth=1, label="SLO")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    fig.autofmt_xdate()
    return _save(fig, folder, name)


def _action_mix_plot(folder: Path, health: Sequence[Row]) -> str | None:
    if not health:
        return None
    latest = max(row["day"] for row in health)
    rows = [r for r in health if r["day"] == latest]
    actions = sorted({a for r in rows for a in (r["action_mix"] or {})})
    fig, ax = plt.subplots(figsize=(7, 3.2))
    bottom = [0.0] * len(rows)
    labels = [f"{r['region']}/{r['model_version']}" for r in rows]
    for action in actions:
        shares = [float((r["action_mix"] or {}).get(action, 0.0)) for r in rows]
        ax.bar(labels, shares, bottom=bottom, label=action)
        bottom = [b + s for b, s in zip(bottom, shares, strict=True)]
    ax.set_title(f"Action mix on {latest}")
    ax.set_ylabel("share of decisions")
    ax.legend(fontsize=6, ncol=3)
    return _save(fig, folder, "action_mix.png")


def _guardrail_plot(folder: Path, health: Sequence[Row]) -> str | None:
    totals: dict[str, list[float]] = defaultdict(list)
    for row in health:
        for rule, rate in (row["guardrail_block_rates"] or {}).items():
            totals[rule].append(float(rate))
    if not totals:
        return None
    rules = sorted(totals)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.barh(rules, [sum(totals[r]) / len(totals[r]) for r in rules])
    ax.set_title("Guardrail block rate (mean over days and versions)")
    ax.set_xlabel("share of decisions blocked in")
    return _save(fig, folder, "guardrails.png")


def _drift_plot(folder: Path, drift: Sequence[Row], settings: MonitorSettings) -> str | None:
    rows = [r for r in drift if r["psi"] is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.3 * len(rows))))
    colors = {"ok": "tab:green", "warn": "tab:orange", "alert": "tab:red"}
    ax.barh([f"{r['region']}.{r['feature']}" for r in rows], [r["psi"] for r in rows],
            color=[colors.get(r["status"], "grey") for r in rows])
    ax.axvline(settings.psi_warn, color="orange", linestyle="--", linewidth=1)
    ax.axvline(settings.psi_alert, color="red", linestyle="--", linewidth=1)
    ax.set_title("Feature drift (PSI, training vs serving)")
    return _save(fig, folder, "drift.png")


def _stream_plot(folder: Path, streams: Sequence[Row]) -> str | None:
    series: dict[str, tuple[list[Any], list[float]]] = defaultdict(lambda: ([], []))
    for row in streams:
        if row["processed_rows_per_second"] is not None:
            xs, ys = series[row["query_name"] or row["query_id"]]
            xs.append(row["timestamp"])
            ys.append(float(row["processed_rows_per_second"]))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for label, (xs, ys) in sorted(series.items()):
        ax.plot(xs, ys, marker=".", label=label)
    ax.set_title("Streaming throughput")
    ax.set_ylabel("processed rows / s")
    ax.legend(fontsize=7)
    fig.autofmt_xdate()
    return _save(fig, folder, "streams.png")


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


_CSS = (
    "body{font-family:sans-serif;margin:2em;max-width:1000px}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}.bad{color:#b00;font-weight:bold}"
    ".ok{color:#070}img{display:block;margin:1em 0;max-width:100%}"
)


def write_report(
    spark: SparkSession,
    lake: Lake,
    *,
    slos: Sequence[SloResult] = (),
    settings: MonitorSettings | None = None,
    now: datetime | None = None,
) -> Path:
    """Write ``index.html`` and its PNG plots to :func:`report_dir`; returns the HTML path."""
    settings = settings or MonitorSettings.from_config(lake.cfg)
    folder = report_dir(lake)
    folder.mkdir(parents=True, exist_ok=True)
    health, drift, streams = _rows(spark, lake)
    candidates: list[tuple[str | None, str]] = [
        (_line_plot(folder, "reward.png", "Mean reward per decision", "reward",
                    _series(health, lambda r: r["reward_mean"])), "Engagement: mean reward by policy version "
                                                                 "(holdout = model version 'baseline')"),
        (_line_plot(folder, "exploration.png", "Exploration rate", "share explored",
                    _series(health, lambda r: r["exploration_rate"])), "Exploration rate"),
        (_line_plot(folder, "freshness.png", "Decision freshness p95", "minutes",
                    _series(health, lambda r: r["freshness_p95_minutes"]),
                    hline=settings.slo_freshness_p95_minutes), "Event → decision lag (p95)"),
        (_action_mix_plot(folder, health), "Action mix on the latest day"),
        (_guardrail_plot(folder, health), "Guardrail block rates"),
        (_drift_plot(folder, drift, settings), "Feature drift (latest run)"),
        (_stream_plot(folder, streams), "Streaming throughput"),
    ]
    plots: list[_Plot] = [(name, caption) for name, caption in candidates if name is not None]
    slo_rows = [
        (s.name, s.value, s.limit, "OK" if s.ok else "BREACHED", s.detail) for s in slos
    ]
    health_rows = [
        (r["day"], r["region"], r["model_version"], r["decisions"], r["exploration_rate"], r["propensity_min"],
         r["propensity_max"], r["ess_fraction"], r["freshness_p95_minutes"], r["reward_mean"],
         r["holdout_reward_mean"], r["harm_rate"], r["conversions"])
        for r in health
    ]
    drift_rows = [(r["region"], r["feature"], r["psi"], r["status"]) for r in drift]
    breached = [s for s in slos if not s.ok]
    verdict = (f'<p class="bad">{len(breached)} SLO(s) breached</p>' if breached
               else '<p class="ok">All SLOs met</p>')
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>nurture_lake monitor</title>"
        f"<style>{_CSS}</style></head><body>",
        f"<h1>nurture_lake monitor</h1><p>Generated {html.escape(stamp)} for environment "
        f"{html.escape(lake.cfg.env)}.</p>",
        "<h2>Service-level objectives</h2>", verdict,
        _table(("SLO", "value", "limit", "status", "detail"), slo_rows),
        "<h2>Plots</h2>",
        *(f'<figure><img src="{html.escape(name)}" alt="{html.escape(caption)}">'
          f"<figcaption>{html.escape(caption)}</figcaption></figure>" for name, caption in plots),
        "<h2>Policy health</h2>",
        _table(("day", "region", "version", "decisions", "explore", "p min", "p max", "ESS/n",
                "fresh p95 min", "reward", "holdout reward", "harm", "conversions"), health_rows),
        "<h2>Feature drift (latest run)</h2>",
        _table(("region", "feature", "PSI", "status"), drift_rows),
        "</body></html>",
    ]
    index = folder / "index.html"
    index.write_text("\n".join(parts), encoding="utf-8")
    return index
