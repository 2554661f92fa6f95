"""The guardrail engine on Spark: every rule for every lead as native SQL expressions.

No Python UDFs. Time-zone math uses ``from_utc_timestamp``/``to_utc_timestamp`` with the per-row
zone; the lead's actions are one array of structs processed with higher-order functions (one
expression per rule, not one per action), and the rolling windows are higher-order functions over
the lead's touch array. Expressions are built as SQL text so a plan costs a handful of JVM calls.
Regions with overrides are evaluated in their own branch (a filter per region, then
``unionByName``): cache ``candidates`` if it is expensive to recompute.

Input (one row per lead; other columns pass through): ``lead_id``, ``region``, ``decided_at`` (UTC,
see ``now_col``), ``timezone`` (IANA; null → UTC), ``consent`` map<string,boolean> per channel (an
``all`` key applies to channels without their own entry), ``suppressed`` boolean,
``suppression_reason`` string, ``fatigue_score`` double, ``touch_times``
array<struct<channel string, at timestamp>> (touches sent *and* decisions pending, at their send
time) and ``budget_spent`` map<string,double> per channel for the day.

Output adds ``allowed_actions`` array<string> (``hold`` first, always), ``guardrails``
array<``GUARDRAIL_RESULT``> (every rule: what it blocked and why) and ``send_at``
map<string,timestamp> (each allowed touch → its UTC send time after quiet-hours deferral). Reason
texts format UTC times with the session time zone, which the project fixes to UTC.

Example::

    scored = apply_guardrails(candidates, config=GuardrailConfig.from_config(cfg),
                              action_space=ActionSpace.from_config(cfg))
"""

from __future__ import annotations

from datetime import timedelta
from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType

from nurture_lake.actions import HOLD, Action, ActionSpace
from nurture_lake.guardrails.config import CapRule, GuardrailConfig, GuardrailRules
from nurture_lake.guardrails.quiet_hours import (
    DEFER_PASSES,
    defer_step_sql,
    is_quiet_local_sql,
    local_micros_sql,
    next_allowed_local_sql,
)
from nurture_lake.guardrails.rules import DEFAULT_TIMEZONE, cap_rule_name, gap_rule_name, quiet_label
from nurture_lake.schemas import GUARDRAIL_RESULT
from nurture_lake.sqltext import sql_double as _dbl
from nurture_lake.sqltext import sql_string as _q

OUTPUT_COLUMNS: tuple[str, ...] = ("allowed_actions", "guardrails", "send_at")
"""Columns :func:`apply_guardrails` adds (replacing any of the same name)."""

_MINUTE = 60_000_000
_EMPTY_IDS = "CAST(array() AS array<string>)"


def apply_guardrails(
    candidates: DataFrame,
    *,
    config: GuardrailConfig,
    action_space: ActionSpace,
    now_col: str = "decided_at",
) -> DataFrame:
    """Evaluate every guardrail for every candidate lead (columns: see the module docstring)."""
    overridden = list(config.regions)
    if not overridden:
        return _apply(candidates, rules=config.defaults, action_space=action_space, now_col=now_col)
    region = F.col("region")
    parts = [
        _apply(candidates.filter(region == F.lit(code)), rules=config.regions[code],
               action_space=action_space, now_col=now_col)
        for code in overridden
    ]
    rest = candidates.filter(region.isNull() | ~region.isin(*overridden))
    parts.append(_apply(rest, rules=config.defaults, action_space=action_space, now_col=now_col))
    return reduce(DataFrame.unionByName, parts)


# ----------------------------------------------------------------------------- SQL text helpers


def _fmt_utc(micros: str) -> str:
    return f"date_format(timestamp_micros({micros}), 'yyyy-MM-dd HH:mm:ss')"


def _fmt_local(local: str) -> str:
    return f"date_format(timestamp_micros({local}), 'yyyy-MM-dd HH:mm')"


def _wait_micros(action: Action) -> int:
    return (action.wait or timedelta(0)) // timedelta(microseconds=1)


class _Acts:
    """The per-lead array of action structs ``_gr_acts``, grown field by field."""

    def __init__(self, literal: str, fields: list[str]) -> None:
        self.expr = literal
        self.fields = fields

    def extend(self, **new: str) -> None:
        """Add (or replace) fields computed from the previous ones (one nested ``transform``)."""
        keep = [f for f in self.fields if f not in new]
        parts = [f"'{f}', a.{f}" for f in keep] + [f"'{k}', {v}" for k, v in new.items()]
        self.fields = keep + list(new)
        self.expr = f"transform({self.expr}, a -> named_struct({', '.join(parts)}))"


def _ids(condition: str) -> str:
    return f"transform(filter(_gr_acts, a -> {condition}), a -> a.id)"


def _joined(condition: str, detail: str) -> str:
    return f"array_join(transform(filter(_gr_acts, a -> {condition}), a -> {detail}), '; ')"


def _consent_value(channel: str) -> str:
    return f"coalesce(try_element_at(`consent`, {channel}), try_element_at(`consent`, 'all'))"


def _consent_blocked(channel: str, mode: str) -> str:
    value = _consent_value(channel)
    missing = f" OR {value} IS NULL" if mode == "opt_in" else ""
    return f"(({value} <=> false){missing})"


def _spent(channel: str) -> str:
    return f"coalesce(CAST(try_element_at(`budget_spent`, {channel}) AS DOUBLE), CAST(0 AS DOUBLE))"


def _cap_count_sql(history: str, window: int) -> str:
    """Spark twin of :func:`nurture_lake.guardrails.rules.cap_count` for the action ``a``."""
    starts = f"concat(array(a.send), filter({history}, t -> t > a.send - {window}L AND t <= a.send))"
    return f"(array_max(transform({starts}, x -> size(filter({history}, h -> h >= x AND h < x + {window}L)))) + 1)"


def _history_col(channel: str | None) -> str:
    return "_gr_h_all" if channel is None else f"_gr_h_{channel}"


# ------------------------------------------------------------------------------------ the engine


def _apply(df: DataFrame, *, rules: GuardrailRules, action_space: ActionSpace, now_col: str) -> DataFrame:
    passthrough = [f"`{c}`" for c in df.columns if c not in OUTPUT_COLUMNS]
    touches = [a for a in action_space.actions if not a.is_hold]
    channels = list(dict.fromkeys(a.channel for a in touches if a.channel is not None))
    qh = rules.quiet_hours
    caps: list[tuple[str | None, CapRule]] = [(None, cap) for cap in rules.caps]
    caps += [(c, cap) for c, caps_of in rules.channel_caps.items() for cap in caps_of]
    gaps: list[tuple[str | None, str]] = [(None, rules.min_gap)] if rules.min_gap else []
    gaps += list(rules.channel_min_gap.items())
    scopes = list(dict.fromkeys([None, *(s for s, _ in caps), *(s for s, _ in gaps)]))

    # Stage 1: decision time, zone, fatigue, the touch history (µs) per scope, the actions.
    hist = (
        "coalesce(filter(transform(`touch_times`, x -> named_struct('channel', x.channel, 'at', unix_micros(x.at))),"
        " x -> x.at IS NOT NULL), CAST(array() AS array<struct<channel:string,at:bigint>>))"
    )
    literal = ", ".join(
        "named_struct("
        f"'id', {_q(a.action_id)}, 'channel', {_q(a.channel or '')}, 'wait', {_wait_micros(a)}L, "
        f"'qsub', {str(bool(a.channel) and qh.applies_to(a.channel or '')).lower()}, "
        f"'lighter', {str(a.channel in rules.fatigue.lighter_channels).lower()}, "
        f"'daily', {_dbl(rules.budget.daily.get(a.channel or ''))}, 'cost', {_dbl(rules.budget.cost(a.channel or ''))})"
        for a in touches
    )
    acts = _Acts(f"array({literal})", ["id", "channel", "wait", "qsub", "lighter", "daily", "cost"])
    staged = df.selectExpr(
        *passthrough,
        f"unix_micros(`{now_col}`) AS _gr_t0",
        f"coalesce(`timezone`, {_q(DEFAULT_TIMEZONE)}) AS _gr_tz",
        "CAST(`fatigue_score` AS DOUBLE) AS _gr_fs",
        f"{hist} AS _gr_hist",
    )
    history_cols = [
        f"transform({'_gr_hist' if s is None else f'filter(_gr_hist, x -> x.channel = {_q(s)})'}, x -> x.at) AS {_history_col(s)}"
        for s in scopes
    ]
    if not touches:
        staged = staged.selectExpr("*", *history_cols, "CAST(NULL AS array<int>) AS _gr_acts")
        return _finish(staged, passthrough, rules, [], [], caps, gaps)
    staged = staged.selectExpr("*", *history_cols)
    step = acts.extend

    step(base="_gr_t0 + a.wait", send="_gr_t0 + a.wait")
    # Stage 2: quiet-hours deferral (local wall time, next allowed local moment, back to UTC), twice.
    if qh.active:
        for _ in range(DEFER_PASSES):
            step(loc=local_micros_sql("a.send", "_gr_tz"))
            step(tgt=next_allowed_local_sql("a.loc", qh))
            step(send=f"CASE WHEN a.qsub THEN {defer_step_sql('a.send', 'a.loc', 'a.tgt', '_gr_tz', qh)} ELSE a.send END")
        step(sloc=local_micros_sql("a.send", "_gr_tz"), bloc=local_micros_sql("a.base", "_gr_tz"))
        step(still=f"a.qsub AND {is_quiet_local_sql('a.sloc', qh)}")
    # Stage 3: per-action rule inputs (consent, fatigue, budget, cap counts, nearest touches).
    tired = f"coalesce(NOT (_gr_fs IS NULL OR isnan(_gr_fs)) AND _gr_fs > {_dbl(rules.fatigue.threshold)}, false)"
    measures = {
        "bcon": _consent_blocked("a.channel", rules.consent.mode),
        "bfat": f"({tired} AND NOT a.lighter)" if rules.fatigue.threshold is not None else "false",
        "bbud": f"coalesce(a.daily IS NOT NULL AND {_spent('a.channel')} + a.cost > a.daily, false)",
    }
    for k, (scope, cap) in enumerate(caps):
        count = _cap_count_sql(_history_col(scope), cap.window_micros)
        measures[f"c{k}"] = count if scope is None else f"CASE WHEN a.channel = {_q(scope)} THEN {count} END"
    for k, (scope, _) in enumerate(gaps):
        near = f"array_min(transform({_history_col(scope)}, t -> abs(t - a.send)))"
        measures[f"g{k}"] = near if scope is None else f"CASE WHEN a.channel = {_q(scope)} THEN {near} END"
    step(**measures)
    staged = staged.selectExpr("*", f"{acts.expr} AS _gr_acts")
    return _finish(staged, passthrough, rules, touches, channels, caps, gaps)


def _finish(
    staged: DataFrame,
    passthrough: list[str],
    rules: GuardrailRules,
    touches: list[Action],
    channels: list[str],
    caps: list[tuple[str | None, CapRule]],
    gaps: list[tuple[str | None, str]],
) -> DataFrame:
    qh = rules.quiet_hours
    has = bool(touches)
    verdicts: list[tuple[str, str, str]] = []  # (rule, blocked ids, reason given the blocked column)

    # suppression
    if rules.suppression.enabled and has:
        verdicts.append((
            "suppression",
            f"CASE WHEN coalesce(`suppressed`, false) THEN transform(_gr_acts, a -> a.id) ELSE {_EMPTY_IDS} END",
            "CASE WHEN size({b}) > 0 THEN concat('lead suppressed: ', coalesce(`suppression_reason`, 'unspecified')) "
            "ELSE 'lead not suppressed' END",
        ))
    else:
        verdicts.append(("suppression", _EMPTY_IDS,
                         _q("lead not suppressed" if rules.suppression.enabled else "suppression disabled")))
    # consent
    mode, purpose = rules.consent.mode, rules.consent.purpose
    per_channel = ", ".join(
        f"CASE WHEN {_consent_value(_q(c))} <=> false THEN {_q(c + ': revoked')} "
        + (f"WHEN {_consent_value(_q(c))} IS NULL THEN {_q(c + ': no grant (opt_in)')} " if mode == "opt_in" else "")
        + "END"
        for c in channels
    )
    verdicts.append((
        "consent",
        _ids("a.bcon") if has else _EMPTY_IDS,
        f"CASE WHEN size({{b}}) > 0 THEN concat({_q(f'purpose {purpose}: ')}, concat_ws('; ', {per_channel or _q('')})) "
        f"ELSE {_q(f'purpose {purpose}, {mode}: all channels allowed')} END",
    ))
    # fatigue
    threshold = rules.fatigue.threshold
    if threshold is None:
        verdicts.append(("fatigue", _EMPTY_IDS, _q("fatigue rule disabled")))
    else:
        thr = "%.2f" % threshold
        tail = f" > {thr}: only hold" + "".join(f", {c}" for c in rules.fatigue.lighter_channels)
        verdicts.append((
            "fatigue",
            _ids("a.bfat") if has else _EMPTY_IDS,
            "CASE WHEN _gr_fs IS NULL OR isnan(_gr_fs) THEN 'fatigue score unknown' "
            f"WHEN _gr_fs > {_dbl(threshold)} THEN concat('fatigue score ', format_string('%.2f', _gr_fs), {_q(tail)}) "
            f"ELSE concat('fatigue score ', format_string('%.2f', _gr_fs), {_q(f' <= {thr}')}) END",
        ))
    # budget
    details = []
    for c in channels:
        daily = rules.budget.daily.get(c)
        if daily is None:
            continue
        cost = rules.budget.cost(c)
        details.append(
            f"CASE WHEN {_spent(_q(c))} + {_dbl(cost)} > {_dbl(daily)} THEN concat({_q(c + ': spent ')}, "
            f"format_string('%.2f', {_spent(_q(c))}), {_q(f' + cost {cost:.2f} > daily budget {daily:.2f}')}) END"
        )
    passed = _q("within daily budgets" if rules.budget.daily else "no budgets configured")
    verdicts.append((
        "budget",
        _ids("a.bbud") if has else _EMPTY_IDS,
        f"CASE WHEN size({{b}}) > 0 THEN concat_ws('; ', {', '.join(details) or _q('')}) ELSE {passed} END",
    ))
    # quiet hours
    if not qh.active:
        verdicts.append(("quiet_hours", _EMPTY_IDS, _q("quiet hours disabled")))
    else:
        items = (
            "CASE WHEN a.still THEN concat(a.id, ': blocked, still quiet at ', " + _fmt_local("a.sloc") + ") "
            "WHEN a.qsub AND a.send != a.base THEN concat(a.id, ': deferred ', " + _fmt_local("a.bloc")
            + ", ' -> ', " + _fmt_local("a.sloc") + ") END"
        )
        listed = f"array_join(transform(_gr_acts, a -> {items}), '; ')" if has else "''"
        verdicts.append((
            "quiet_hours",
            _ids("a.still") if has else _EMPTY_IDS,
            f"concat({_q(quiet_label(rules) + ' ')}, _gr_tz, ': ', "
            f"coalesce(nullif({listed}, ''), 'no send in quiet hours'))",
        ))
    # caps
    for k, (scope, cap) in enumerate(caps):
        hit = f"a.c{k} > {cap.max}"
        detail = (
            f"concat(a.id, ' at ', {_fmt_utc('a.send')}, ': ', CAST(a.c{k} AS STRING), "
            f"{_q(f' touches in {cap.window} > max {cap.max}')})"
        )
        what = "touches" if scope is None else f"{scope} touches"
        verdicts.append((
            cap_rule_name(cap, scope),
            _ids(hit) if has else _EMPTY_IDS,
            f"CASE WHEN size({{b}}) > 0 THEN {_joined(hit, detail) if has else _q('')} "
            f"ELSE {_q(f'at most {cap.max} {what} per {cap.window}')} END",
        ))
    # gaps
    for k, (scope, gap_text) in enumerate(gaps):
        hit = f"a.g{k} < {rules.min_gap_micros(scope) or 0}L"
        minutes = f"CAST(a.g{k} div {_MINUTE}L AS STRING)"
        detail = (
            f"concat(a.id, ' at ', {_fmt_utc('a.send')}, ': nearest touch ', {minutes}, {_q(f' min away < {gap_text}')})"
        )
        verdicts.append((
            gap_rule_name(scope),
            _ids(hit) if has else _EMPTY_IDS,
            f"CASE WHEN size({{b}}) > 0 THEN {_joined(hit, detail) if has else _q('')} "
            f"ELSE {_q(f'touches at least {gap_text} apart')} END",
        ))

    staged = staged.selectExpr("*", *[f"{blocked} AS _gr_b{k}" for k, (_, blocked, _) in enumerate(verdicts)])
    results = ", ".join(
        f"named_struct('rule', {_q(rule)}, 'passed', size(_gr_b{k}) = 0, 'blocked_actions', _gr_b{k}, "
        f"'reason', {reason.replace('{b}', f'_gr_b{k}')})"
        for k, (rule, _, reason) in enumerate(verdicts)
    )
    blocked_all = f"flatten(array({', '.join(f'_gr_b{k}' for k in range(len(verdicts)))}))"
    ok = f"filter(_gr_acts, a -> NOT array_contains({blocked_all}, a.id))"
    allowed = f"concat(array({_q(HOLD)}), transform({ok}, a -> a.id))" if has else f"array({_q(HOLD)})"
    send_map = (
        f"map_from_entries(transform({ok}, a -> named_struct('key', a.id, 'value', timestamp_micros(a.send))))"
        if has else "CAST(map() AS map<string,timestamp>)"
    )
    return staged.selectExpr(
        *passthrough,
        f"{allowed} AS allowed_actions",
        f"array({results}) AS guardrails",
        f"{send_map} AS send_at",
    ).withColumn("guardrails", F.col("guardrails").cast(ArrayType(GUARDRAIL_RESULT)))
