"""The closed-loop report a marketer would read: HTML with plots (PNG files beside it).

Built from the gold tables (decisions, outcomes, gate decisions), not from in-memory state, so the
same report can be rebuilt from any lake. Figures: touches, engagement, conversions and
unsubscribes per policy version versus the holdout; reward per decision over time against the
oracle; action mix; guardrail block rates.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from nurture_lake.tables import Lake  # noqa: E402

_CONVERSIONS = ("meeting_booked", "opportunity_created", "deal_won")
_HARM = ("email_unsubscribe", "sms_unsubscribe", "email_complaint")


@dataclass
class Report:
    """Where the report went and the headline numbers."""

    html_path: Path
    pngs: list[Path] = field(default_factory=list)
    headline: dict[str, Any] = field(default_factory=dict)


def _union(spark: SparkSession, lake: Lake, layer: str, name: str) -> DataFrame | None:
    out = None
    for region in lake.regions:
        ref = lake.table(region, layer, name)
        if ref.exists(spark):
            part = ref.read(spark)
            out = part if out is None else out.unionByName(part)
    return out


def outcome_frame(spark: SparkSession, lake: Lake) -> pd.DataFrame:
    """Closed-window outcomes with their decision's day and policy group (small: one row per decision)."""
    outcomes = _union(spark, lake, "gold", "decision_outcomes")
    if outcomes is None:
        return pd.DataFrame()
    comps = F.col("reward_components")
    frame = outcomes.select(
        F.to_date("decided_at").alias("day"),
        F.when(F.col("holdout"), F.lit("holdout")).otherwise(F.concat(F.lit("policy v"), F.col("model_version"))).alias("group"),
        "action_id", "channel", "reward", "harm",
        (F.col("channel").isNotNull()).cast("int").alias("touch"),
        F.exists(F.map_keys(comps), lambda k: ~k.isin("default", "channel_cost", *_HARM)).cast("int").alias("engaged"),
        F.exists(F.map_keys(comps), lambda k: k.isin(*_CONVERSIONS)).cast("int").alias("converted"),
    )
    return frame.toPandas()


def guardrail_frame(spark: SparkSession, lake: Lake) -> pd.DataFrame:
    """Per rule: decisions evaluated and how often the rule blocked at least one action."""
    decisions = _union(spark, lake, "gold", "cadence_decisions")
    if decisions is None:
        return pd.DataFrame()
    rules = decisions.select(F.explode("guardrails").alias("g")).select("g.rule", "g.passed")
    return rules.groupBy("rule").agg(
        F.count("*").alias("evaluated"), F.sum((~F.col("passed")).cast("int")).alias("blocked")
    ).orderBy("rule").toPandas()


def action_mix_frame(spark: SparkSession, lake: Lake) -> pd.DataFrame:
    decisions = _union(spark, lake, "gold", "cadence_decisions")
    if decisions is None:
        return pd.DataFrame()
    return decisions.groupBy(F.to_date("decided_at").alias("day"), "action_id").count().toPandas()


def _save(fig: plt.Figure, folder: Path, name: str, pngs: list[Path]) -> None:
    path = folder / name
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    pngs.append(path)


def _kpi_table(outcomes: pd.DataFrame) -> pd.DataFrame:
    grouped = outcomes.groupby("group").agg(
        decisions=("reward", "size"), touches=("touch", "sum"), engaged=("engaged", "sum"),
        conversions=("converted", "sum"), unsubscribes=("harm", "sum"), reward_per_decision=("reward", "mean"),
    )
    grouped["unsubscribe_rate"] = grouped["unsubscribes"] / grouped["decisions"].clip(lower=1)
    grouped["conversion_rate"] = grouped["conversions"] / grouped["decisions"].clip(lower=1)
    return grouped.reset_index()


def build_report(
    spark: SparkSession,
    lake: Lake,
    *,
    title: str = "nurture_lake — closed-loop report",
    oracle: pd.DataFrame | None = None,
    notes: list[str] | None = None,
) -> Report:
    """Write ``<report_root>/report.html`` and its PNGs; ``oracle`` (day, policy, oracle) adds the yardstick."""
    folder = lake.reports()
    folder.mkdir(parents=True, exist_ok=True)
    pngs: list[Path] = []
    outcomes = outcome_frame(spark, lake)
    kpis = _kpi_table(outcomes) if not outcomes.empty else pd.DataFrame()

    if not outcomes.empty:
        daily = outcomes.groupby(["day", "group"])["reward"].mean().unstack("group").sort_index()
        fig, ax = plt.subplots(figsize=(8, 4))
        daily.plot(ax=ax, marker="o")
        ax.set_title("Realised reward per decision by decision day")
        ax.set_xlabel("decision day")
        ax.set_ylabel("mean reward")
        _save(fig, folder, "reward_per_decision.png", pngs)

        fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
        for ax, column, label in zip(axes, ("engaged", "converted", "harm"),
                                     ("engagement rate", "conversion rate", "unsubscribe/complaint rate"), strict=True):
            outcomes.groupby("group")[column].mean().plot.bar(ax=ax, color="#4477aa")
            ax.set_title(label)
            ax.set_xlabel("")
        _save(fig, folder, "kpis_by_policy.png", pngs)

    yardstick = pd.DataFrame()
    if oracle is not None and not oracle.empty:
        yardstick = oracle.groupby("group").agg(decisions=("chosen", "size"), expected_reward=("chosen", "mean"),
                                                oracle_reward=("oracle", "mean")).reset_index()
        yardstick["regret_per_decision"] = yardstick["oracle_reward"] - yardstick["expected_reward"]
        by_day = oracle.groupby(["day", "group"])["chosen"].mean().unstack("group").sort_index()
        by_day["oracle"] = oracle.groupby("day")["oracle"].mean()
        fig, ax = plt.subplots(figsize=(8, 4))
        by_day.drop(columns="oracle").plot(ax=ax, marker="o")
        by_day["oracle"].plot(ax=ax, linestyle="--", color="black", label="oracle")
        ax.legend()
        ax.set_title("Expected reward per decision (simulator truth) vs the oracle")
        ax.set_ylabel("expected reward")
        _save(fig, folder, "oracle_yardstick.png", pngs)

    mix = action_mix_frame(spark, lake)
    if not mix.empty:
        table = mix.pivot_table(index="day", columns="action_id", values="count", fill_value=0).sort_index()
        share = table.div(table.sum(axis=1), axis=0)
        fig, ax = plt.subplots(figsize=(8, 4))
        share.plot.area(ax=ax, legend=True, colormap="tab20")
        ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.set_title("Action mix by decision day")
        ax.set_ylabel("share of decisions")
        _save(fig, folder, "action_mix.png", pngs)

    guards = guardrail_frame(spark, lake)
    if not guards.empty:
        guards["block_rate"] = guards["blocked"] / guards["evaluated"].clip(lower=1)
        fig, ax = plt.subplots(figsize=(8, 4))
        guards.set_index("rule")["block_rate"].sort_values().plot.barh(ax=ax, color="#cc6677")
        ax.set_title("Guardrail block rate (decisions where the rule removed an action)")
        _save(fig, folder, "guardrails.png", pngs)

    headline = _headline(kpis)
    if not yardstick.empty:
        headline["oracle_regret"] = {r["group"]: round(float(r["regret_per_decision"]), 4)
                                     for r in yardstick.to_dict("records")}
        headline["expected_reward"] = {r["group"]: round(float(r["expected_reward"]), 4)
                                       for r in yardstick.to_dict("records")}
        verdict = learned_vs_holdout(oracle)
        if verdict is not None:
            headline["learned_vs_holdout"] = verdict
            notes = [*(notes or []), verdict["summary"]]
    html_path = folder / "report.html"
    html_path.write_text(_html(title, kpis, guards, yardstick, pngs, notes or [], lake))
    return Report(html_path=html_path, pngs=pngs, headline=headline)


def learned_vs_holdout(oracle: pd.DataFrame, *, z: float = 1.96) -> dict[str, Any] | None:
    """Expected reward per decision (simulator truth) of learned policies vs the holdout, with a 95% interval.

    ``oracle`` has one row per evaluated decision: ``group`` (``holdout``, ``policy vlogging`` or
    ``policy v<N>``) and ``chosen`` (the exact expected reward of the chosen action). "Learned" pools
    every ``policy v<N>`` decision; the interval is the normal one for a difference of two means.
    ``None`` when either side has fewer than two decisions.
    """
    if oracle.empty:
        return None
    learned = oracle.loc[oracle["group"].str.startswith("policy v") & (oracle["group"] != "policy vlogging"), "chosen"]
    holdout = oracle.loc[oracle["group"] == "holdout", "chosen"]
    if len(learned) < 2 or len(holdout) < 2:
        return None
    diff = float(learned.mean() - holdout.mean())
    se = float(np.sqrt(learned.var(ddof=1) / len(learned) + holdout.var(ddof=1) / len(holdout)))
    low, high = diff - z * se, diff + z * se
    word = "beats" if low > 0 else ("is worse than" if high < 0 else "is not distinguishable from")
    return {
        "learned": round(float(learned.mean()), 4), "holdout": round(float(holdout.mean()), 4),
        "difference": round(diff, 4), "ci_low": round(low, 4), "ci_high": round(high, 4),
        "learned_decisions": int(len(learned)), "holdout_decisions": int(len(holdout)),
        "summary": (f"Learned policy {word} the holdout: expected reward per decision {learned.mean():+.4f} vs "
                    f"{holdout.mean():+.4f} (difference {diff:+.4f}, 95% CI {low:+.4f} to {high:+.4f}; "
                    f"{len(learned):,} vs {len(holdout):,} decisions, simulator truth)."),
    }


def _headline(kpis: pd.DataFrame) -> dict[str, Any]:
    if kpis.empty:
        return {}
    rows = {r["group"]: r for r in kpis.to_dict("records")}
    out: dict[str, Any] = {g: round(float(r["reward_per_decision"]), 4) for g, r in rows.items()}
    return out


def _html(title: str, kpis: pd.DataFrame, guards: pd.DataFrame, yardstick: pd.DataFrame, pngs: list[Path],
          notes: list[str], lake: Lake) -> str:
    tables = "".join(
        f"<h2>{html.escape(name)}</h2>{frame.to_html(index=False, float_format=lambda v: f'{v:.4f}')}"
        for name, frame in (("Engagement and harm by policy version vs holdout", kpis),
                            ("Against the oracle (simulator truth, sampled decisions)", yardstick),
                            ("Guardrails", guards)) if not frame.empty
    )
    images = "".join(f'<figure><img src="{p.name}" alt="{p.stem}"><figcaption>{p.stem}</figcaption></figure>' for p in pngs)
    where = "".join(
        f"<li>{html.escape(region)}: <code>{html.escape(str(lake.region_root(region)))}</code></li>"
        for region in lake.regions
    )
    note_items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
img{{max-width:100%}}figure{{margin:1.5em 0}}</style></head><body>
<h1>{html.escape(title)}</h1><p>Generated {datetime.now():%Y-%m-%d %H:%M} UTC.</p>
<ul>{note_items}</ul>{tables}{images}<h2>Where the tables are</h2><ul>{where}</ul></body></html>"""
