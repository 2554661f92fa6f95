"""The policy-quality benchmark's evaluation machinery (bench/bench_policy_quality.py), on real Spark."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyspark.sql import SparkSession

from bench.bench_policy_quality import (
    ActionOutcomes,
    PolicyQualityRun,
    exact_outcomes,
    normalised,
    policy_values,
)
from nurture_lake.actions import ActionSpace, RewardSpec
from nurture_lake.config import NurtureConfig
from nurture_lake.policy import evidence_lambda, fit_linear_bandit, statistics_from_arrays
from nurture_lake.simulator import SimulatorConfig, World

ACTIONS = ("hold", "email@1d", "push@1d", "chat@1d")


def _outcomes() -> ActionOutcomes:
    nan = np.nan
    value = np.array([
        [0.0, 0.4, 0.1, -0.2],
        [0.0, nan, 0.3, 0.5],    # e-mail blocked
        [0.0, -0.1, nan, nan],   # only hold and e-mail allowed
    ])
    unsub = np.where(np.isnan(value), nan, np.array([[0, 0.01, 0, 0], [0, 0, 0, 0], [0, 0.03, 0, 0]]))
    return ActionOutcomes(value, unsub, np.where(np.isnan(value), nan, 0.0))


def test_policy_values_random_fixed_oracle() -> None:
    values = policy_values(_outcomes(), action_ids=ACTIONS)
    # random: the mean over the allowed actions of each lead-day, then over lead-days
    assert values["random"]["value"] == pytest.approx(np.mean([0.3 / 4, 0.8 / 3, -0.1 / 2]))
    assert values["random"]["unsubscribe"] == pytest.approx(np.mean([0.01 / 4, 0.0, 0.03 / 2]))
    # a fixed cadence takes its action where allowed and holds elsewhere
    assert values["fixed:email@1d"]["value"] == pytest.approx(np.mean([0.4, 0.0, -0.1]))
    assert values["fixed:chat@1d"]["value"] == pytest.approx(np.mean([-0.2, 0.5, 0.0]))
    assert values["fixed:hold"]["value"] == 0.0
    # the oracle takes the best allowed action of each lead-day
    assert values["oracle"]["value"] == pytest.approx(np.mean([0.4, 0.5, 0.0]))
    assert values["oracle"]["unsubscribe"] == pytest.approx(0.01 / 3)
    assert all(values["oracle"]["value"] >= v["value"] - 1e-12 for v in values.values())


def test_learned_policy_scored_by_probabilities_and_choices() -> None:
    out = _outcomes()
    probs = np.array([[0.1, 0.9, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5], [1.0, 0.0, 0.0, 0.0]])
    values = policy_values(out, action_ids=ACTIONS, learned_probs=probs, learned_greedy=np.array([1, 3, 0]))
    assert values["learned"]["value"] == pytest.approx(np.mean([0.36, 0.4, 0.0]))
    assert values["learned_greedy"]["value"] == pytest.approx(values["oracle"]["value"])
    assert normalised(values["learned_greedy"]["value"], values["random"]["value"], values["oracle"]["value"]) == 1.0
    assert normalised(values["random"]["value"], values["random"]["value"], values["oracle"]["value"]) == 0.0


def test_exact_outcomes_are_the_worlds_expected_rewards(cfg: NurtureConfig) -> None:
    """The bench's per-action numbers equal ``World.expected_reward`` at the same send times."""
    world = World(cfg, SimulatorConfig.from_config(cfg, overrides={"leads": 20, "days": 3}))
    space, spec = ActionSpace.from_config(cfg), RewardSpec.from_config(cfg)
    decided = datetime(2026, 9, 2, tzinfo=UTC)
    leads = ["us-000001", "eu-000002", "us-000003"]
    send_at = [{a.action_id: decided + (a.wait or timedelta(0)) + timedelta(hours=i) for a in space.actions
                if a.channel} for i in range(len(leads))]
    allowed = np.ones((len(leads), len(space.action_ids)), dtype=bool)
    allowed[1, 2] = False
    out = exact_outcomes(world, leads, send_at, allowed, space=space, spec=spec)
    for i, lead in enumerate(leads):
        for j, action in enumerate(space.action_ids):
            if not allowed[i, j]:
                assert np.isnan(out.value[i, j])
                continue
            expected = world.expected_reward(lead, action, decided, spec, action_space=space,
                                             send_at=send_at[i].get(action))
            assert out.value[i, j] == pytest.approx(expected, abs=1e-12)
    values = policy_values(out, action_ids=space.action_ids)
    assert values["oracle"]["value"] >= max(v["value"] for v in values.values()) - 1e-12


def test_evidence_lambda_recovers_the_noise_to_signal_ratio() -> None:
    """λ = σ²/τ² for data drawn from the model; the auto fit shrinks a pure-noise action to its prior."""
    rng = np.random.default_rng(1)
    n, d = 4000, 6
    x = np.c_[np.ones(n), rng.normal(size=(n, d - 1))]
    theta = rng.normal(scale=0.5, size=d)
    r = x @ theta + rng.normal(scale=2.0, size=n)
    lam = evidence_lambda(x.T @ x, x.T @ r, float(r @ r), float(n))
    assert 4.0 / 0.25 / 3 < lam < 4.0 / 0.25 * 3
    noise = rng.normal(size=n)
    stats = statistics_from_arrays(np.r_[x, x], ["a"] * n + ["b"] * n, np.r_[r, noise], action_ids=("a", "b"))
    fitted = fit_linear_bandit(stats, auto_lambda=True)
    assert np.abs(fitted.theta[1]).max() < 0.05 < np.abs(fitted.theta[0]).max()


def test_a_tiny_run_reports_every_policy(spark: SparkSession, cfg: NurtureConfig, tmp_path: Path) -> None:
    policy = cfg.section("policy")
    # Waits up to 1 day and a 1-day reward window: decisions of the first days are complete by day 8.
    light = cfg.model_copy(update={"extra": {**cfg.extra, "learning": {
        **cfg.section("learning"), "ope_bootstrap": 20, "thompson_draws": 200, "min_training_examples": 20,
        "tuning_max_evals": 3},
        "policy": {**policy, "actions": {**policy["actions"], "waits": ["4h", "1d"]},
                   "reward": {**policy["reward"], "window": "1d"}}}})
    run = PolicyQualityRun(spark, light, leads=60, days=8, eval_days=1, seed=3, train_every=8, log=lambda _: None,
                           dump=tmp_path / "pq.npz", phase="all")
    result = run.run()
    policies = result["policies"]
    assert {"random", "oracle", "learned", "learned_greedy", "linear_ceiling", "fixed:hold"} <= set(policies)
    assert {f"fixed:{a}" for a in run.action_ids} <= set(policies)
    assert result["evaluation_lead_days"] > 0 and result["decisions_logged"] > result["evaluation_lead_days"]
    oracle = policies["oracle"]["value_per_1000"]
    assert all(oracle >= p["value_per_1000"] - 1e-9 for p in policies.values())
    assert policies["random"]["normalised_score"] == pytest.approx(0.0)
    assert policies["oracle"]["normalised_score"] == pytest.approx(1.0)
    assert result["best_fixed_cadence"] in run.action_ids
    assert set(result["targets"]) == {"score_at_least_0.8", "beats_best_fixed", "unsubscribe_not_higher_than_best_fixed"}
    assert result["trainings"] and result["trainings"][-1]["day"] == 8
    assert result["normalised_score"] == pytest.approx(policies["learned"]["normalised_score"])
    # hyperopt ran at the final training: each trial refitted and served on the evaluation lead-days, the
    # chosen one (highest objective) exactly as the learned policy was.
    study = result["tuning_study"]
    assert len(study["trials"]) == 3
    assert study["chosen_served_score"] == pytest.approx(result["normalised_score"], abs=1e-12)
    assert study["best_served_score"] >= study["chosen_served_score"]
    _check_offline_study(spark, run, light, tmp_path / "pq.npz", result)


def _check_offline_study(
    spark: SparkSession, run: PolicyQualityRun, cfg: NurtureConfig, path: Path, result: dict[str, Any],
) -> None:
    """``bench.policy_ceilings`` and ``bench.policy_estimators`` read the run's ``--dump`` and score models
    the way the benchmark does."""
    from bench.policy_ceilings import Dump, ceilings, choice_score, lead_truths, truths_study
    from bench.policy_estimators import NOISE_FREE
    from bench.policy_estimators import study as estimator_study
    from bench.policy_estimators import training_rows

    dump = Dump.load(path)
    values, allowed = dump.eval_values, dump.eval_allowed
    # Predicting the exact values chooses the oracle's action (1.0); predicting their negation, the worst.
    assert choice_score(np.nan_to_num(values), values, allowed) == pytest.approx(1.0)
    assert choice_score(-np.nan_to_num(values), values, allowed) < 0.0
    # The rebuilt truths are the run's own world's: lead "<region>-<index>" is row <index> of its region.
    truths = lead_truths(cfg, dump)
    expected = [run.world.populations[r].affinity[int(i)] for r, i in (str(x).rsplit("-", 1) for x in dump.eval_leads)]
    np.testing.assert_array_equal(truths["affinity"], np.array(expected))
    offline = ceilings(dump, max_iter=10)
    assert all(score <= 1.0 + 1e-9 for score in offline.values())
    # The study's linear model is the benchmark's own ceiling fit, so both score the same.
    assert offline["linear"] == pytest.approx(result["normalised_score_linear_ceiling"])
    study = truths_study(cfg, dump, max_iter=10)
    assert set(study) == {"context", "context + true affinities", "context + all per-lead truths"}
    assert all(s <= 1.0 + 1e-9 for scores in study.values() for s in scores.values())

    # The estimator study refits the final training's own rows (the complete ones before the validation cut):
    # the product's estimator there is the run's final fit, so its greedy choices score the same.
    rows = training_rows(path, validation_fraction=run.learning.validation_fraction, gap_seconds=0.0)
    assert len(rows.rewards) == result["trainings"][-1]["n_train"]
    # Each row's exact reward is the simulator's value of its logged action on the tick it was decided.
    tick_values = {(lead, t.day): float(t.outcomes.value[i, t.chosen[i]])
                   for t in run.ticks for i, lead in enumerate(t.leads)}
    with np.load(path) as raw:
        days = (raw["train_decided_at"] // 10**9 - int(run.start.timestamp())) // 86_400
        expected = [tick_values[(str(lead), int(day))] for lead, day in zip(raw["train_leads"], days, strict=True)]
        np.testing.assert_array_equal(raw["train_exact"], np.array(expected))
        arrays = {name: raw[name] for name in raw.files}
    assert rows.exact is not None and np.isfinite(rows.exact).all()
    found = estimator_study(spark, path, halves=2, seed=0, settings=run.learning, gap_seconds=0.0, log=lambda _: None)
    assert found["touches pooled, evidence λ (now)"]["full"] == pytest.approx(
        result["policies"]["learned_greedy"]["normalised_score"], abs=1e-9)
    # The reference row is the product's estimator on the exact rewards: where the observed rewards are the
    # exact ones, the two rows are the same fit.
    assert NOISE_FREE in found
    noiseless = path.with_name("noiseless.npz")
    np.savez_compressed(noiseless, **{**arrays, "train_reward": arrays["train_exact"]})
    same = estimator_study(spark, noiseless, halves=1, seed=0, settings=run.learning, gap_seconds=0.0,
                           log=lambda _: None)
    assert same[NOISE_FREE] == same["touches pooled, evidence λ (now)"]
    assert same[NOISE_FREE]["full"] == found[NOISE_FREE]["full"]
    baseline = found["hold pooled, evidence λ (before)"]
    assert baseline["paired_diff"] == 0.0 and baseline["paired_diff_se"] == 0.0
    assert all(r["full"] <= 1.0 + 1e-9 and r["halves_mean"] <= 1.0 + 1e-9 for r in found.values())


def test_training_rewards_count_only_the_decisions_own_responses(spark: SparkSession) -> None:
    """``explicit``: organic events credited by last-touch attribution do not count; ``engagement``:
    the positive part becomes its channel's mean over engaged decisions, harm stays as observed."""
    from nurture_lake.policy import explicit_rewards

    spec = RewardSpec(weights={"email_open": 0.1, "email_reply": 5.0, "email_click": 1.0, "email_unsubscribe": -5.0},
                      channel_cost={"email": 0.05})
    outcomes = spark.createDataFrame([
        ("d1", "email", ["e1", "e2", "o1"]),   # open + reply of its own, an organic click credited to it
        ("d2", "email", ["e3", "e4"]),         # open + unsubscribe
        ("d3", "email", ["o2"]),               # only organic activity
        ("d4", None, []),                       # hold
    ], "decision_id string, channel string, attributed_event_ids array<string>")
    events = spark.createDataFrame([
        ("e1", "email_open", "d1"), ("e2", "email_reply", "d1"), ("o1", "email_click", None),
        ("e3", "email_open", "d2"), ("e4", "email_unsubscribe", "d2"), ("o2", "email_click", None),
    ], "event_id string, event_type string, decision_id string")
    explicit = {r.decision_id: (r.reward, r.harm) for r in explicit_rewards(outcomes, events, reward=spec).collect()}
    assert explicit["d1"] == (pytest.approx(5.1 - 0.05), False)
    assert explicit["d2"] == (pytest.approx(0.1 - 5.0 - 0.05), True)
    assert explicit["d3"] == (pytest.approx(-0.05), False)
    assert explicit["d4"] == (0.0, False)
    rb = {r.decision_id: r.reward for r in explicit_rewards(outcomes, events, reward=spec, engagement_means=True).collect()}
    mean_positive = (5.1 + 0.1) / 2
    assert rb["d1"] == pytest.approx(mean_positive - 0.05)
    assert rb["d2"] == pytest.approx(mean_positive - 5.0 - 0.05)
    assert rb["d3"] == pytest.approx(-0.05) and rb["d4"] == 0.0


def test_bootstrap_intervals_resample_leads() -> None:
    from bench.bench_policy_quality import bootstrap_intervals

    rng = np.random.default_rng(0)
    n = 400
    leads = [f"L{i // 2}" for i in range(n)]          # two lead-days per lead
    oracle = rng.uniform(0.5, 1.0, n)
    values = {"random": np.zeros(n), "oracle": oracle, "fixed:a": 0.2 * oracle, "learned": 0.5 * oracle,
              "learned_greedy": oracle}
    ci = bootstrap_intervals(values, leads, best_fixed="fixed:a", n_boot=200)
    assert ci["normalised_score_learned"] == pytest.approx([0.5, 0.5])   # exactly half of the gap in every resample
    assert ci["normalised_score_learned_greedy"] == pytest.approx([1.0, 1.0])
    lo, hi = ci["learned_minus_best_fixed_per_1000"]
    assert lo < 1000 * float(np.mean(0.3 * oracle)) < hi
