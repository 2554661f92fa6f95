"""Invariant checker: replay a decision table against the history and report every violation.

For each decision the checker rebuilds what was known at its ``decided_at``:

- **touches**: the lead's ``<channel>_sent`` events that occurred at or before ``decided_at``, plus the
  ``send_at`` of the lead's *earlier* non-hold decisions (earlier ``decided_at``, ties broken by
  ``decision_id``) that had not yet been dispatched (no sent event carrying their ``decision_id`` by
  then) — so every pair of decisions is checked once, from the later one's side;
- **consent**: the latest consent-ledger row per channel (or ``all``) for the region's purpose (or
  ``all``) at or before ``decided_at`` (``opt_in`` regions need a grant);
- **suppression**: any suppression event (unsubscribe, complaint, hard bounce) at or before ``decided_at``;
- **fatigue**: only when ``fatigue_scores`` (decision_id, fatigue_score) is given.

It then checks the chosen action with the rule primitives of :mod:`nurture_lake.guardrails.rules`
(a Python UDF per decision) and the daily budgets with a Spark window. Rules reported:
``unknown_action``, ``suppression``, ``consent``, ``fatigue``, ``send_time`` (missing send time or
before ``decided_at + wait``), ``quiet_hours``, ``max_touches_*``, ``min_gap*``, ``budget`` and
``recorded_block`` (the decision's own ``guardrails`` blocked the chosen action).

Example::

    violations = check_decisions(spark, decisions, events_with_lead_ids, consent_with_lead_ids,
                                 config=gcfg, action_space=space, region_timezones={"us": "America/New_York"})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, StringType, StructField, StructType

from nurture_lake.actions import HOLD, ActionSpace
from nurture_lake.guardrails.config import GuardrailConfig, GuardrailRules
from nurture_lake.guardrails.quiet_hours import is_quiet, local_micros
from nurture_lake.guardrails.rules import (
    DEFAULT_TIMEZONE,
    cap_count,
    cap_rule_name,
    consent_allows,
    fmt_local,
    fmt_num,
    fmt_utc,
    gap_rule_name,
    nearest_gap,
)

VIOLATIONS = StructType([
    StructField("decision_id", StringType(), False),
    StructField("rule", StringType(), False),
    StructField("detail", StringType(), True),
])
"""One row per violated rule of a decision."""

_FOUND = ArrayType(StructType([StructField("rule", StringType(), False), StructField("detail", StringType(), True)]))
_MINUTE = 60_000_000


# ----------------------------------------------------------------------------- Python replay


def _effective_consent(entries: Sequence[Any], channel: str, purpose: str) -> dict[str, bool | None]:
    """The latest ledger entry for ``channel`` (or ``all``) and the purpose (or ``all``)."""
    best: tuple[int, int, bool] | None = None
    for entry in entries or ():
        if entry["purpose"] not in (purpose, "all") or entry["channel"] not in (channel, "all"):
            continue
        key = (int(entry["at"]), 1 if entry["channel"] == channel else 0, bool(entry["granted"]))
        if best is None or key[:2] > best[:2]:
            best = key
    return {channel: None if best is None else best[2]}


def verify_decision(
    row: Mapping[str, Any], *, rules: GuardrailRules, action_space: ActionSpace,
) -> list[tuple[str, str]]:
    """The rules one replayed decision breaks, as ``(rule, detail)`` pairs.

    ``row`` holds ``action_id``, ``decided_us``, ``send_us`` (µs or None), ``timezone``, ``touches``
    (channel, at µs), ``consent`` (channel, purpose, granted, at µs), ``suppressions`` (event_type,
    bounce_type), ``fatigue_score`` and ``recorded`` (rules of the row's own guardrails that blocked
    the action).
    """
    found: list[tuple[str, str]] = []
    action_id = row["action_id"]
    try:
        action = action_space.parse(action_id)
    except ValueError:
        return [("unknown_action", f"{action_id!r} is not in the action space")]
    if action.is_hold or action.channel is None:
        return found
    channel = action.channel
    for rule in row["recorded"] or ():
        found.append(("recorded_block", f"{action_id} was blocked by its own {rule} result"))
    # suppression
    if rules.suppression.enabled:
        for item in row["suppressions"] or ():
            kind, bounce = item["event_type"], item["bounce_type"]
            if kind in rules.suppression.event_types and not (kind.endswith("_bounce") and bounce in rules.suppression.soft_bounce_values):
                found.append(("suppression", f"lead suppressed by {kind} before the decision"))
                break
    # consent
    consent = _effective_consent(row["consent"], channel, rules.consent.purpose)
    ok, detail = consent_allows(consent, channel, rules.consent.mode)
    if not ok:
        found.append(("consent", f"purpose {rules.consent.purpose}: {detail}"))
    # fatigue
    score, threshold = row["fatigue_score"], rules.fatigue.threshold
    if score is not None and threshold is not None and score == score and score > threshold \
            and channel not in rules.fatigue.lighter_channels:
        found.append(("fatigue", f"fatigue score {fmt_num(score)} > {fmt_num(threshold)} but {channel} was chosen"))
    # send time
    send = row["send_us"]
    earliest = row["decided_us"] + (action.wait // timedelta(microseconds=1) if action.wait else 0)
    if send is None:
        found.append(("send_time", f"{action_id} has no send_at"))
        return found
    if send < earliest:
        found.append(("send_time", f"send_at {fmt_utc(send)} is before decided_at + {action_id.split('@')[1]} ({fmt_utc(earliest)})"))
    zone = row["timezone"] or DEFAULT_TIMEZONE
    if rules.quiet_hours.applies_to(channel) and is_quiet(send, zone, rules.quiet_hours):
        found.append(("quiet_hours", f"send_at {fmt_local(local_micros(send, zone))} local ({zone}) is quiet"))
    # caps and gaps
    touches = [(t["channel"], int(t["at"])) for t in row["touches"] or () if t["at"] is not None]
    scoped = {None: [at for _, at in touches]}
    for cap in rules.caps:
        count = cap_count(scoped[None], send, cap.window_micros)
        if count > cap.max:
            found.append((cap_rule_name(cap), f"{count} touches in {cap.window} at {fmt_utc(send)} > max {cap.max}"))
    for cap in rules.channel_caps.get(channel, ()):
        count = cap_count([at for c, at in touches if c == channel], send, cap.window_micros)
        if count > cap.max:
            found.append((cap_rule_name(cap, channel), f"{count} {channel} touches in {cap.window} at {fmt_utc(send)} > max {cap.max}"))
    for scope in ([None] if rules.min_gap else []) + ([channel] if channel in rules.channel_min_gap else []):
        gap = rules.min_gap_micros(scope) or 0
        near = nearest_gap([at for c, at in touches if scope is None or c == scope], send)
        if near is not None and near < gap:
            text = rules.min_gap if scope is None else rules.channel_min_gap[scope]
            found.append((gap_rule_name(scope), f"nearest touch {near // _MINUTE} min from {fmt_utc(send)} < {text}"))
    return found


# ----------------------------------------------------------------------------- Spark replay


def _micros(col: Column) -> Column:
    return F.unix_micros(col)


def _region_value(regions: Mapping[str, str], default: str) -> Column:
    expr: Column = F.lit(default)
    for code, value in regions.items():
        expr = F.when(F.col("region") == F.lit(code), F.lit(value)).otherwise(expr)
    return expr


def check_decisions(
    spark: SparkSession,
    decisions: DataFrame,
    events: DataFrame,
    consent_history: DataFrame,
    *,
    config: GuardrailConfig,
    action_space: ActionSpace,
    region_timezones: Mapping[str, str] | None = None,
    lead_timezones: DataFrame | None = None,
    fatigue_scores: DataFrame | None = None,
) -> DataFrame:
    """Every violation of the decision table as ``VIOLATIONS`` rows (none for a clean table).

    ``decisions``: ``GOLD_CADENCE_DECISIONS`` rows; ``events``: ``silver.events`` rows with a
    ``lead_id`` column; ``consent_history``: consent-ledger rows (``channel``, ``purpose``,
    ``granted``, ``occurred_at``) with a ``lead_id`` column. A lead's zone comes from
    ``lead_timezones`` (lead_id, timezone), else its region's zone, else UTC.
    """
    del spark  # the inputs carry their session; kept first for the read-style signature
    d = decisions.select(
        "decision_id", "lead_id", "region", "decided_at", "action_id", "send_at",
        F.coalesce(
            F.transform(
                F.filter(F.col("guardrails"), lambda g: F.array_contains(g["blocked_actions"], F.col("action_id"))),
                lambda g: g["rule"],
            ),
            F.array().cast("array<string>"),
        ).alias("recorded"),
    )
    decided = F.col("d.decided_at")

    sent = events.filter(F.col("event_type").endswith("_sent")).select(
        F.col("lead_id").alias("e_lead"),
        F.coalesce(F.col("channel"), F.substring_index(F.col("event_type"), "_", 1)).alias("e_channel"),
        F.col("occurred_at").alias("e_at"),
    )
    sent_touches = (
        d.alias("d").join(sent, (F.col("d.lead_id") == F.col("e_lead")) & (F.col("e_at") <= decided))
        .groupBy(F.col("d.decision_id").alias("t_id"))
        .agg(F.collect_list(F.struct(F.col("e_channel").alias("channel"), _micros(F.col("e_at")).alias("at"))).alias("sent"))
    )
    dispatched = (
        events.filter(F.col("event_type").endswith("_sent") & F.col("decision_id").isNotNull())
        .groupBy(F.col("decision_id").alias("x_id")).agg(F.min("occurred_at").alias("x_at"))
    )
    earlier = (
        decisions.filter((F.col("action_id") != F.lit(HOLD)) & F.col("send_at").isNotNull())
        .select(
            F.col("decision_id").alias("p_id"), F.col("lead_id").alias("p_lead"),
            F.col("decided_at").alias("p_decided"), F.col("send_at").alias("p_send"),
            F.coalesce(F.col("channel"), F.substring_index(F.col("action_id"), "@", 1)).alias("p_channel"),
        )
        .join(dispatched, F.col("p_id") == F.col("x_id"), "left")
    )
    pending = (
        d.alias("d").join(
            earlier,
            (F.col("d.lead_id") == F.col("p_lead"))
            & ((F.col("p_decided") < decided) | ((F.col("p_decided") == decided) & (F.col("p_id") < F.col("d.decision_id"))))
            & (F.col("x_at").isNull() | (F.col("x_at") > decided)),
        )
        .groupBy(F.col("d.decision_id").alias("q_id"))
        .agg(F.collect_list(F.struct(F.col("p_channel").alias("channel"), _micros(F.col("p_send")).alias("at"))).alias("pending"))
    )
    consent = (
        d.alias("d").join(
            consent_history.select(
                F.col("lead_id").alias("c_lead"), "channel", "purpose", "granted", F.col("occurred_at").alias("c_at"),
            ),
            (F.col("d.lead_id") == F.col("c_lead")) & (F.col("c_at") <= decided),
        )
        .groupBy(F.col("d.decision_id").alias("c_id"))
        .agg(F.collect_list(F.struct("channel", "purpose", "granted", _micros(F.col("c_at")).alias("at"))).alias("consent"))
    )
    kinds = sorted({k for r in [config.defaults, *config.regions.values()] for k in r.suppression.event_types})
    suppressions = (
        d.alias("d").join(
            events.filter(F.col("event_type").isin(*kinds)).select(
                F.col("lead_id").alias("s_lead"), "event_type", F.col("occurred_at").alias("s_at"),
                F.try_element_at(F.col("properties"), F.lit("bounce_type")).alias("bounce_type"),
            ),
            (F.col("d.lead_id") == F.col("s_lead")) & (F.col("s_at") <= decided),
        )
        .groupBy(F.col("d.decision_id").alias("s_id"))
        .agg(F.collect_list(F.struct("event_type", "bounce_type")).alias("suppressions"))
    )
    ctx = (
        d.join(sent_touches, F.col("decision_id") == F.col("t_id"), "left")
        .join(pending, F.col("decision_id") == F.col("q_id"), "left")
        .join(consent, F.col("decision_id") == F.col("c_id"), "left")
        .join(suppressions, F.col("decision_id") == F.col("s_id"), "left")
    )
    zone = _region_value(region_timezones or {}, DEFAULT_TIMEZONE)
    if lead_timezones is not None:
        ctx = ctx.join(lead_timezones.select(F.col("lead_id").alias("z_lead"), F.col("timezone").alias("z_tz")),
                       F.col("lead_id") == F.col("z_lead"), "left")
        zone = F.coalesce(F.col("z_tz"), zone)
    if fatigue_scores is not None:
        ctx = ctx.join(fatigue_scores.select(F.col("decision_id").alias("f_id"), "fatigue_score"),
                       F.col("decision_id") == F.col("f_id"), "left")
        fatigue = F.col("fatigue_score").cast("double")
    else:
        fatigue = F.lit(None).cast("double")
    empty = F.array().cast("array<struct<channel:string,at:bigint>>")
    ctx = ctx.select(
        "decision_id", "region", "action_id", "recorded",
        _micros(F.col("decided_at")).alias("decided_us"), _micros(F.col("send_at")).alias("send_us"),
        zone.alias("timezone"),
        F.concat(F.coalesce(F.col("sent"), empty), F.coalesce(F.col("pending"), empty)).alias("touches"),
        "consent", "suppressions", fatigue.alias("fatigue_score"),
    )

    def _check(row: Any) -> list[tuple[str, str]]:
        return verify_decision(row.asDict(), rules=config.for_region(row["region"]), action_space=action_space)

    # A plain (pickled-row) UDF, said outright: Spark 4.2 otherwise tries to infer an Arrow UDF from the hints.
    check = F.udf(_check, _FOUND, useArrow=False)
    found = (
        ctx.select("decision_id", F.explode(check(F.struct(*ctx.columns))).alias("v"))
        .select("decision_id", F.col("v.rule").alias("rule"), F.col("v.detail").alias("detail"))
    )
    return found.unionByName(_budget_violations(decisions, config=config)).select(
        *[F.col(f.name).cast(f.dataType) for f in VIOLATIONS.fields]
    )


def _budget_violations(decisions: DataFrame, *, config: GuardrailConfig) -> DataFrame:
    """Decisions whose (region, channel, UTC day) running cost, by decided_at, exceeds the daily budget."""
    regions = list(config.regions)
    channels = sorted({c for r in [config.defaults, *config.regions.values()] for c in r.budget.daily})
    if not channels:
        return decisions.sparkSession.createDataFrame([], VIOLATIONS)
    daily: Column = F.lit(None).cast("double")
    cost: Column = F.lit(1.0)
    for channel in channels:
        is_c = F.col("_ch") == F.lit(channel)
        pick_daily = {r: config.for_region(r).budget.daily.get(channel) for r in regions}
        pick_cost = {r: config.for_region(r).budget.cost(channel) for r in regions}
        d_expr: Column = F.lit(config.defaults.budget.daily.get(channel)).cast("double")
        c_expr: Column = F.lit(config.defaults.budget.cost(channel))
        for code in regions:
            d_expr = F.when(F.col("region") == F.lit(code), F.lit(pick_daily[code]).cast("double")).otherwise(d_expr)
            c_expr = F.when(F.col("region") == F.lit(code), F.lit(pick_cost[code])).otherwise(c_expr)
        daily = F.when(is_c, d_expr).otherwise(daily)
        cost = F.when(is_c, c_expr).otherwise(cost)
    touches = decisions.filter(F.col("action_id") != F.lit(HOLD)).withColumn(
        "_ch", F.coalesce(F.col("channel"), F.substring_index(F.col("action_id"), "@", 1)),
    ).withColumn("_day", F.to_date("decided_at"))
    window = (
        Window.partitionBy("region", "_ch", "_day").orderBy("decided_at", "decision_id")
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    costed = touches.withColumn("_daily", daily).withColumn("_cum", F.sum(cost.cast("double")).over(window))
    return costed.filter(F.col("_daily").isNotNull() & (F.col("_cum") > F.col("_daily") + F.lit(1e-9))).select(
        "decision_id",
        F.lit("budget").alias("rule"),
        F.concat(
            F.col("_ch"), F.lit(" on "), F.col("_day").cast("string"), F.lit(": running cost "),
            F.format_string("%.2f", F.col("_cum")), F.lit(" > daily budget "), F.format_string("%.2f", F.col("_daily")),
        ).alias("detail"),
    )
