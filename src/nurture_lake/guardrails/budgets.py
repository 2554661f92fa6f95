"""Daily channel budgets across the leads of one batch.

The per-lead ``budget`` rule in :func:`apply_guardrails` only knows what was spent *before* the
batch. Two ways to keep a batch within budget:

- :func:`gate_budgets` — **the chosen approach**, run after :func:`apply_guardrails` and *before*
  sampling. Per region and channel it allows the channel to at most ``quota = floor((daily - spent)
  / unit_cost)`` leads of the batch, picked in a stable salted-hash order of ``lead_id``, and removes
  the channel's actions from every other lead's allowed set (rule ``budget_quota``). Because the
  allowed set is fixed before the draw, the logged propensity stays the exact probability of the
  chosen action, and the budget holds whatever the policy samples. The price is under-use: a lead
  holding quota may not pick the channel (the next batch sees the real spend and re-opens it).
- :func:`enforce_budgets` — a backstop *after* sampling: decisions beyond a channel's remaining
  budget, in the same stable order, become ``hold`` and carry a failed ``budget_enforced`` result.
  Such a row's propensity describes the action that was *drawn*, not the hold that was logged, so
  learning and off-policy evaluation must drop rows whose ``budget_enforced`` result failed. After
  :func:`gate_budgets` it changes nothing.

Budgets are per region (the region's rules), per channel and per UTC day; ``spent_so_far`` is
``{region: {channel: amount}}`` for that day.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from nurture_lake.actions import HOLD, ActionSpace
from nurture_lake.guardrails.config import GuardrailConfig, GuardrailRules
from nurture_lake.schemas import GUARDRAIL_RESULT

Spent = Mapping[str, Mapping[str, float]]
_UNLIMITED = 2**62


def _remaining(rules: GuardrailRules, region: str | None, channel: str, spent: Spent | None) -> float | None:
    daily = rules.budget.daily.get(channel)
    if daily is None:
        return None
    used = float(((spent or {}).get(region or "") or {}).get(channel, 0.0))
    return daily - used


def _quota(rules: GuardrailRules, region: str | None, channel: str, spent: Spent | None) -> int:
    """Touches the channel may still take today (``_UNLIMITED`` without a budget or at zero cost)."""
    left = _remaining(rules, region, channel, spent)
    cost = rules.budget.cost(channel)
    if left is None or cost == 0:
        return _UNLIMITED if left is None or left >= 0 else 0
    return max(int(left // cost), 0) if left >= 0 else 0


def _by_region(config: GuardrailConfig, regions: list[str], value: dict[str | None, object]) -> Column:
    """A column choosing ``value[region]`` by the row's region (``value[None]`` for the defaults)."""
    expr = F.lit(value[None])
    for code in regions:
        expr = F.when(F.col("region") == F.lit(code), F.lit(value[code])).otherwise(expr)
    return expr


def _budget_regions(config: GuardrailConfig, spent: Spent | None) -> list[str]:
    return sorted(set(config.regions) | set(spent or {}))


def _order_key(key_col: str, salt: str) -> list[Column]:
    return [F.xxhash64(F.lit(salt), F.col(key_col)), F.col(key_col)]


def gate_budgets(
    evaluated: DataFrame,
    *,
    config: GuardrailConfig,
    action_space: ActionSpace,
    spent_so_far: Spent | None = None,
    key_col: str = "lead_id",
    salt: str = "budget",
) -> DataFrame:
    """Before sampling: give each budgeted channel to at most its remaining quota of leads.

    ``evaluated`` is the output of :func:`apply_guardrails`; ``allowed_actions``, ``send_at`` and
    ``guardrails`` (one more result, ``budget_quota``) are updated.
    """
    regions = _budget_regions(config, spent_so_far)
    budgeted = sorted({c for r in [config.defaults, *config.regions.values()] for c in r.budget.daily})
    channel_of = {a.action_id: a.channel for a in action_space.actions if not a.is_hold}
    df = evaluated
    blocked_flags: dict[str, Column] = {}
    reasons = []
    for i, channel in enumerate(budgeted):
        ids = [a for a, c in channel_of.items() if c == channel]
        if not ids:
            continue
        has = F.arrays_overlap(F.col("allowed_actions"), F.array(*[F.lit(a) for a in ids]))
        quota = _by_region(config, regions, {
            r: _quota(config.for_region(r), r, channel, spent_so_far) for r in [None, *regions]
        })
        rank = F.row_number().over(Window.partitionBy("region", has).orderBy(*_order_key(key_col, salt)))
        df = df.withColumn(f"_bq_{i}", has & (rank > quota)).withColumn(f"_bq_quota_{i}", quota)
        flag = F.col(f"_bq_{i}")
        for action_id in ids:
            blocked_flags[action_id] = flag
        reasons.append(F.when(flag, F.concat(
            F.lit(f"{channel}: batch quota of "), F.col(f"_bq_quota_{i}").cast("string"), F.lit(" leads used up"),
        )))
    ordered = [a for a in channel_of if a in blocked_flags]
    blocked = F.array_compact(F.array(*[F.when(blocked_flags[a], F.lit(a)) for a in ordered])) if ordered \
        else F.array().cast("array<string>")
    df = df.withColumn("_bq_blocked", blocked)
    result = F.struct(
        F.lit("budget_quota").alias("rule"),
        (F.size("_bq_blocked") == 0).alias("passed"),
        F.col("_bq_blocked").alias("blocked_actions"),
        F.when(F.size("_bq_blocked") > 0, F.concat_ws("; ", *reasons) if reasons else F.lit(""))
        .otherwise(F.lit("within the batch quota")).alias("reason"),
    ).cast(GUARDRAIL_RESULT)
    df = df.withColumn("allowed_actions", F.array_except(F.col("allowed_actions"), F.col("_bq_blocked")))
    df = df.withColumn("send_at", F.map_filter("send_at", lambda k, v: ~F.array_contains(F.col("_bq_blocked"), k)))
    df = df.withColumn("guardrails", F.concat(F.col("guardrails"), F.array(result)))
    return df.drop(*[c for c in df.columns if c.startswith("_bq_")])


def enforce_budgets(
    decisions: DataFrame,
    *,
    config: GuardrailConfig,
    spent_so_far: Spent | None = None,
    key_col: str = "decision_id",
    salt: str = "budget",
) -> DataFrame:
    """After sampling: decisions beyond a channel's remaining daily budget become ``hold``.

    Non-hold decisions of each (region, channel) are taken in a stable salted-hash order of
    ``key_col``; once the running cost exceeds the remaining budget the rest turn into ``hold``
    (``channel``, ``delay``, ``send_at`` null) with a failed ``budget_enforced`` result appended to
    ``guardrails``. Every other decision gets a passed ``budget_enforced`` result.
    """
    regions = _budget_regions(config, spent_so_far)
    budgeted = sorted({c for r in [config.defaults, *config.regions.values()] for c in r.budget.daily})
    left = F.lit(None).cast("double")
    cost = F.lit(1.0)
    for channel in budgeted:
        is_c = F.col("channel") == F.lit(channel)
        left = F.when(is_c, _by_region(config, regions, {
            r: _remaining(config.for_region(r), r, channel, spent_so_far) for r in [None, *regions]
        }).cast("double")).otherwise(left)
        cost = F.when(is_c, _by_region(config, regions, {
            r: config.for_region(r).budget.cost(channel) for r in [None, *regions]
        })).otherwise(cost)
    touch = (F.col("action_id") != F.lit(HOLD)) & F.col("channel").isNotNull()
    window = (
        Window.partitionBy("region", "channel", touch).orderBy(*_order_key(key_col, salt))
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    df = decisions.withColumn("_be_left", left).withColumn("_be_cost", cost.cast("double"))
    df = df.withColumn("_be_cum", F.sum("_be_cost").over(window))
    over = touch & F.col("_be_left").isNotNull() & (F.col("_be_cum") > F.col("_be_left"))
    df = df.withColumn("_be_over", F.coalesce(over, F.lit(False)))
    result = F.struct(
        F.lit("budget_enforced").alias("rule"),
        (~F.col("_be_over")).alias("passed"),
        F.when(F.col("_be_over"), F.array(F.col("action_id"))).otherwise(F.array().cast("array<string>"))
        .alias("blocked_actions"),
        F.when(F.col("_be_over"), F.concat(
            F.col("channel"), F.lit(": running cost "), F.format_string("%.2f", F.col("_be_cum")),
            F.lit(" > remaining daily budget "), F.format_string("%.2f", F.col("_be_left")),
            F.lit("; turned into hold after sampling"),
        )).otherwise(F.lit("within the remaining daily budget")).alias("reason"),
    ).cast(GUARDRAIL_RESULT)
    over_col = F.col("_be_over")
    df = df.withColumn("guardrails", F.concat(F.col("guardrails"), F.array(result)))
    df = df.withColumn("action_id", F.when(over_col, F.lit(HOLD)).otherwise(F.col("action_id")))
    for name in ("channel", "delay", "send_at"):
        if name in df.columns:
            df = df.withColumn(name, F.when(over_col, F.lit(None)).otherwise(F.col(name)))
    return df.drop("_be_left", "_be_cost", "_be_cum", "_be_over")
