"""Policy: exact propensities, distributed fit, cold start, training set, tuning (real Spark)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from scipy import stats as sps

from nurture_lake.config import NurtureConfig, load_config
from nurture_lake.features import FeatureSettings, context_columns
from nurture_lake.policy import (
    ExplorationParams,
    LearningSettings,
    LinearBandit,
    LoggingPolicy,
    NotEnoughData,
    action_probabilities,
    build_training_set,
    decide,
    decision_uniforms,
    fit_engagement_prior,
    fit_linear_bandit,
    sample_actions,
    score_decisions,
    score_pandas,
    statistics_from_arrays,
    sufficient_statistics,
    TrainResult,
    TuningFold,
    train_policy,
    tune_policy,
)
from nurture_lake.policy.ope import policy_estimates, with_target
from nurture_lake.policy.trainer import exploration_cap, split_training_set
from nurture_lake.policy.tuning import fit_with_params, lambda_is_used, search_space
from nurture_lake.schemas import GOLD_CADENCE_DECISIONS, GOLD_DECISION_OUTCOMES

ACTIONS = ("hold", "email@1d", "push@1d")
TRUE_THETA = np.array([
    [0.0, 0.0, 0.0],     # hold
    [0.2, 1.0, 0.0],     # email@1d: good when x1 is high
    [0.2, 0.0, 1.0],     # push@1d: good when x2 is high
])
T0 = datetime(2026, 1, 1)


def simulate_logged(n: int, seed: int, *, noise: float = 0.5) -> dict[str, np.ndarray]:
    """Uniform logging over ACTIONS in a world with the known linear reward TRUE_THETA."""
    rng = np.random.default_rng(seed)
    x = np.c_[np.ones(n), rng.normal(size=(n, 2))]
    a = rng.integers(0, len(ACTIONS), n)
    r = np.einsum("nd,nd->n", x, TRUE_THETA[a]) + noise * rng.normal(size=n)
    harm = rng.random(n) < 0.02
    return {"x": x, "a": a, "r": r, "harm": harm}


def logged_frame(spark: SparkSession, sim: dict[str, np.ndarray], *, partitions: int = 3) -> DataFrame:
    """The simulation as a training-set frame."""
    rows = [
        (f"d{i:05d}", T0 + timedelta(minutes=i), sim["x"][i].tolist(), ACTIONS[sim["a"][i]], 1.0 / len(ACTIONS),
         float(sim["r"][i]), bool(sim["harm"][i]), list(ACTIONS))
        for i in range(len(sim["r"]))
    ]
    schema = ("decision_id string, decided_at timestamp, context array<double>, action string, "
              "propensity double, reward double, harm boolean, allowed_actions array<string>")
    return spark.createDataFrame(rows, schema).repartition(partitions)


def two_channel_config(tmp_path: Path, **overrides: object) -> NurtureConfig:
    """The local configuration with ACTIONS as its action space and MLflow in ``tmp_path``."""
    return load_config("local", overrides={
        "mlflow.tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "policy.actions.channels": ["email", "push"], "policy.actions.waits": ["1d"], **overrides,
    })


def _bandit(theta: np.ndarray, params: ExplorationParams, *, a_inv_scale: float = 0.1) -> LinearBandit:
    k, d = theta.shape
    return LinearBandit(tuple(ACTIONS[:k]), theta, np.tile(np.eye(d) * a_inv_scale, (k, 1, 1)), 1.0,
                        np.zeros(k, dtype=np.int64), params)


# ---------------------------------------------------------------- exact propensities


def test_softmax_and_epsilon_greedy_are_closed_form() -> None:
    means = np.array([[0.0, 1.0, 0.5]])
    widths = np.zeros((1, 3))
    allowed = np.array([[True, True, True]])
    soft = action_probabilities(means, widths, allowed,
                                ExplorationParams("softmax", floor=0.1, max_exploration=1.0, temperature=0.5))
    e = np.exp(np.array([0.0, 1.0, 0.5]) / 0.5)
    np.testing.assert_allclose(soft[0], 0.9 * e / e.sum() + 0.1 / 3, atol=1e-12)

    greedy = action_probabilities(means, widths, allowed, ExplorationParams("epsilon_greedy", floor=0.3))
    np.testing.assert_allclose(greedy[0], [0.1, 0.8, 0.1], atol=1e-12)

    # A guardrail blocks the best action: it gets 0 and the rest is renormalised over what is allowed.
    blocked = action_probabilities(means, widths, np.array([[True, False, True]]),
                                   ExplorationParams("epsilon_greedy", floor=0.3))
    np.testing.assert_allclose(blocked[0], [0.15, 0.0, 0.85], atol=1e-12)


def test_linucb_takes_the_upper_bound_and_the_budget_caps_exploration() -> None:
    means = np.array([[1.0, 0.8, 0.0]])
    widths = np.array([[0.0, 0.5, 0.1]])
    allowed = np.ones((1, 3), dtype=bool)
    ucb = action_probabilities(means, widths, allowed,
                               ExplorationParams("linucb", floor=0.0, max_exploration=1.0, scale=1.0))
    np.testing.assert_allclose(ucb[0], [0.0, 1.0, 0.0])  # 0.8 + 0.5 > 1.0
    capped = action_probabilities(means, widths, allowed,
                                  ExplorationParams("linucb", floor=0.06, max_exploration=0.25, scale=1.0))
    # Non-greedy mass capped at 0.25, then the floor 0.06 spread over 3 actions.
    np.testing.assert_allclose(capped[0], [0.94 * 0.75 + 0.02, 0.94 * 0.25 + 0.02, 0.02], atol=1e-12)


def test_max_exploration_rate_caps_non_greedy_mass_floor_included() -> None:
    means = np.array([[0.0, 1.0, 0.5, 0.2], [0.0, 1.0, 0.5, 0.2], [0.3, 0.0, 0.0, 0.0]])
    widths = np.zeros((3, 4))
    allowed = np.array([[True, True, True, True], [True, False, True, True], [True, False, False, False]])
    params = ExplorationParams("softmax", floor=0.3, max_exploration=1.0, temperature=0.5)
    free = action_probabilities(means, widths, allowed, params)
    capped = action_probabilities(means, widths, allowed, params.with_changes(max_exploration_rate=0.2))
    # Row 0: greedy is action 1; the others keep their proportions and share exactly 0.2.
    others = [0, 2, 3]
    np.testing.assert_allclose(capped[0, 1], 0.8, atol=1e-12)
    np.testing.assert_allclose(capped[0, others], 0.2 * free[0, others] / free[0, others].sum(), atol=1e-12)
    # Row 1: the best action is blocked, so the greedy one is action 2; blocked stays exactly 0.
    np.testing.assert_allclose(capped[1], [0.2 * free[1, 0] / (free[1, 0] + free[1, 3]), 0.0, 0.8,
                                           0.2 * free[1, 3] / (free[1, 0] + free[1, 3])], atol=1e-12)
    # Row 2: a single allowed action keeps probability 1.
    np.testing.assert_allclose(capped[2], [1.0, 0.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(capped.sum(axis=1), 1.0, atol=1e-12)
    # Below the cap nothing changes.
    loose = action_probabilities(means, widths, allowed, params.with_changes(max_exploration_rate=0.99))
    np.testing.assert_array_equal(loose, free)


def test_training_applies_the_strictest_guardrail_exploration_rate(
    spark: SparkSession, cfg: NurtureConfig, tmp_path: Path,
) -> None:
    conf = two_channel_config(tmp_path, **{"guardrails.regions.eu.max_exploration_rate": 0.1})  # default 0.2
    training = logged_frame(spark, simulate_logged(300, seed=11), partitions=2)
    settings = LearningSettings(strategy="epsilon_greedy", exploration_floor=0.6, ridge_auto=False,
                                cold_start_min_examples=0, min_training_examples=10)
    result = train_policy(spark, conf, training, phase="fit", register=False, settings=settings)
    assert result.policy is not None and result.policy.action_ids == ACTIONS
    assert result.policy.exploration.max_exploration_rate == 0.1
    probs = result.policy.probabilities(np.array([[1.0, 2.0, 0.0], [1.0, 0.0, 2.0]]), np.ones((2, 3), dtype=bool))
    # The floor alone would leave 0.6 x 2/3 = 0.4 on non-greedy actions; the guardrail allows 0.1.
    np.testing.assert_allclose(probs, [[0.05, 0.9, 0.05], [0.05, 0.05, 0.9]], atol=1e-12)


def test_the_pooled_prior_is_used_however_much_data_unless_a_threshold_is_set(
    spark: SparkSession, tmp_path: Path,
) -> None:
    conf = two_channel_config(tmp_path)
    training = logged_frame(spark, simulate_logged(1500, seed=12), partitions=2).cache()
    train, _, _ = split_training_set(training, LearningSettings())
    stats = sufficient_statistics(train, action_ids=ACTIONS)
    assert int(stats.counts.min()) > 250  # every action well past the old cold-start threshold of 200
    prior = fit_engagement_prior(train, action_ids=ACTIONS, pooled=ACTIONS[1:])  # the touches, not hold

    def fitted(**settings: object) -> LinearBandit:
        result = train_policy(spark, conf, training, phase="fit", register=False,
                              settings=LearningSettings(min_training_examples=10, **settings))
        assert result.policy is not None
        return result.policy

    # Default (None): every action shrinks towards the pooled model, each by its own evidence λ.
    always = fitted()
    expected = fit_linear_bandit(stats, prior_mean=prior.prior_mean, prior_strength=5.0, auto_lambda=True)
    np.testing.assert_allclose(always.theta, expected.theta, rtol=1e-6, atol=1e-9)
    # A threshold below every action's count: no prior, the weights shrink towards zero.
    thresholded = fitted(cold_start_min_examples=200)
    np.testing.assert_allclose(thresholded.theta, fit_linear_bandit(stats, auto_lambda=True).theta, rtol=1e-6, atol=1e-9)
    assert always.hyperparams["prior"] and not thresholded.hyperparams["prior"]
    assert not np.allclose(always.theta, thresholded.theta)
    training.unpersist()


def test_thompson_probabilities_match_the_gaussian_formula() -> None:
    # Two actions: P(action 1 wins) = Φ((m1 - m0) / sqrt(w0² + w1²)).
    means = np.array([[0.0, 0.3], [0.0, -0.2]])
    widths = np.array([[0.4, 0.3], [0.2, 0.2]])
    allowed = np.ones((2, 2), dtype=bool)
    params = ExplorationParams("thompson", floor=0.0, max_exploration=1.0, draws=40_000, seed=3)
    probs = action_probabilities(means, widths, allowed, params)
    exact = sps.norm.cdf((means[:, 1] - means[:, 0]) / np.sqrt((widths ** 2).sum(axis=1)))
    np.testing.assert_allclose(probs[:, 1], exact, atol=0.01)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    # Deterministic: the same seed gives the same probabilities.
    np.testing.assert_array_equal(probs, action_probabilities(means, widths, allowed, params))


@pytest.mark.parametrize("strategy", ["thompson", "linucb", "softmax", "epsilon_greedy", "uniform", "baseline"])
def test_empirical_frequencies_match_logged_propensities(strategy: str) -> None:
    n = 20_000
    if strategy in ("uniform", "baseline"):
        policy = LoggingPolicy(ACTIONS, kind=strategy, baseline_action="email@1d", floor=0.2)
    else:
        policy = _bandit(TRUE_THETA, ExplorationParams(strategy, floor=0.1, temperature=0.3, draws=500))
    contexts = np.tile([1.0, 0.1, 0.05], (n, 1))
    allowed = np.ones((n, 3), dtype=bool)
    allowed[n // 2:, 1] = False  # guardrails block email for half the decisions
    ids = [f"dec-{i}" for i in range(n)]
    out = decide(policy, contexts, allowed, ids, seed=11)
    rows = np.arange(n)
    # The logged propensity is the probability of the chosen action; blocked actions are never drawn.
    np.testing.assert_array_equal(out.propensity, out.probs[rows, out.chosen])
    assert not allowed[rows, out.chosen].size or allowed[rows, out.chosen].all()
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0, atol=1e-12)
    for half in (slice(0, n // 2), slice(n // 2, n)):
        expected = out.probs[half].sum(axis=0)
        observed = np.bincount(out.chosen[half], minlength=3).astype(float)
        keep = expected > 0
        assert observed[~keep].sum() == 0
        if keep.sum() > 1:
            p_value = sps.chisquare(observed[keep], expected[keep]).pvalue
            assert p_value > 1e-3, (strategy, observed, expected)
    # Replaying the same decision ids draws the same actions.
    np.testing.assert_array_equal(decide(policy, contexts, allowed, ids, seed=11).chosen, out.chosen)


def test_sampling_is_inverse_cdf_over_the_fixed_order() -> None:
    probs = np.array([[0.2, 0.0, 0.8], [0.2, 0.0, 0.8], [0.5, 0.5, 0.0], [0.0, 0.0, 0.0]])
    chosen = sample_actions(probs, np.array([0.1999, 0.2001, 0.9999999999, 0.5]))
    np.testing.assert_array_equal(chosen, [0, 2, 1, -1])
    u = decision_uniforms(["a", "b", "a"], seed=1)
    assert u[0] == u[2] and u[0] != u[1] and ((u >= 0) & (u < 1)).all()


def test_baseline_logging_policy_probabilities_by_hand() -> None:
    policy = LoggingPolicy(ACTIONS, kind="baseline", baseline_action="email@1d", floor=0.3)
    allowed = np.array([[True, True, True], [True, True, True], [True, False, True], [False, False, True]])
    probs = policy.probabilities(None, allowed, recent_touch=np.array([0.0, 2.0, 0.0, 0.0]))
    np.testing.assert_allclose(probs, [
        [0.1, 0.8, 0.1],          # cadence: email@1d
        [0.8, 0.1, 0.1],          # touched recently: hold
        [0.85, 0.0, 0.15],        # email blocked: hold, floor over two allowed actions
        [0.0, 0.0, 1.0],          # only push allowed
    ], atol=1e-12)


def test_spark_scoring_path_draws_with_the_logged_propensities(spark: SparkSession) -> None:
    policy = _bandit(TRUE_THETA, ExplorationParams("softmax", floor=0.1, temperature=0.3))
    n = 3000
    rows = [(f"s{i}", [1.0, 0.3, 0.0], None if i % 3 else ["hold", "push@1d"]) for i in range(n)]
    df = spark.createDataFrame(rows, "decision_id string, context array<double>, allowed_actions array<string>")
    scored = score_decisions(df, policy, seed=5).toPandas()
    # Hand-computed softmax for the two cases (all allowed / email blocked).
    m = TRUE_THETA @ np.array([1.0, 0.3, 0.0])
    full = np.exp(m / 0.3) / np.exp(m / 0.3).sum() * 0.9 + 0.1 / 3
    pair = np.exp(m[[0, 2]] / 0.3) / np.exp(m[[0, 2]] / 0.3).sum() * 0.9 + 0.05
    blocked = scored[scored.decision_id.str[1:].astype(int) % 3 == 0]
    open_ = scored[scored.decision_id.str[1:].astype(int) % 3 != 0]
    assert dict(open_.iloc[0].action_probs) == pytest.approx(dict(zip(ACTIONS, full)), abs=1e-12)
    assert dict(blocked.iloc[0].action_probs) == pytest.approx({"hold": pair[0], "push@1d": pair[1]}, abs=1e-12)
    assert set(blocked.action_id) <= {"hold", "push@1d"}
    for frame, p in ((open_, full), (blocked, np.array([pair[0], 0.0, pair[1]]))):
        observed = frame.action_id.map(ACTIONS.index).value_counts().reindex(range(3), fill_value=0).to_numpy()
        keep = p > 0
        assert sps.chisquare(observed[keep], p[keep] * len(frame)).pvalue > 1e-3
        np.testing.assert_allclose(frame.propensity, frame.action_id.map(lambda a, p=p: p[ACTIONS.index(a)]))
    # The Spark path and the in-memory (pyfunc) path agree row for row.
    local = score_pandas(policy, df.toPandas(), seed=5)
    assert list(local.action_id) == list(scored.action_id)
    assert (scored.explored == (scored.action_id != np.where(scored.decision_id.str[1:].astype(int) % 3 == 0,
                                                            "push@1d", "email@1d"))).all()


# ---------------------------------------------------------------- distributed fit


@pytest.mark.parametrize(("weighted", "d"), [(False, 5), (True, 5), (False, 64)])
def test_distributed_fit_equals_numpy_ridge(spark: SparkSession, weighted: bool, d: int) -> None:
    # d = 64: an action's 4,163 partial sums span two of the blocks Spark adds up, from four partitions.
    rng = np.random.default_rng(4)
    n, lam = 1500, 0.7
    x = np.c_[np.ones(n), rng.normal(size=(n, d - 1))]
    a = rng.integers(0, 3, n)
    r = rng.normal(size=n) + x[:, 1]
    p = rng.uniform(0.05, 1.0, n)
    rows = [(f"d{i}", x[i].tolist(), ACTIONS[a[i]], float(r[i]), float(p[i])) for i in range(n)]
    df = spark.createDataFrame(rows, "decision_id string, context array<double>, action string, "
                                     "reward double, propensity double").repartition(4)
    stats = sufficient_statistics(df, action_ids=ACTIONS, importance_weighting=weighted, max_importance_weight=8.0)
    fitted = fit_linear_bandit(stats, ridge_lambda=lam)
    w = np.minimum(1.0 / p, 8.0) if weighted else np.ones(n)
    for i in range(3):
        sel = a == i
        xs, ws, rs = x[sel], w[sel], r[sel]
        direct = np.linalg.solve(lam * np.eye(d) + (xs * ws[:, None]).T @ xs, (xs * ws[:, None]).T @ rs)
        np.testing.assert_allclose(fitted.theta[i], direct, atol=1e-8, rtol=0)
        assert stats.counts[i] == sel.sum()
    np.testing.assert_allclose(fitted.a_inv[0] @ (lam * np.eye(d) + stats.xtx[0]), np.eye(d), atol=1e-10)


def test_training_on_a_known_linear_world_recovers_the_best_action(spark: SparkSession) -> None:
    sim = simulate_logged(1200, seed=1)
    stats = sufficient_statistics(logged_frame(spark, sim), action_ids=ACTIONS)
    policy = fit_linear_bandit(stats, ridge_lambda=1.0, exploration=ExplorationParams("epsilon_greedy", floor=0.05))
    clear = np.array([
        [1.0, 2.0, -1.0],    # email
        [1.0, -1.0, 2.0],    # push
        [1.0, -2.0, -2.0],   # hold
        [1.0, 1.5, 0.0],     # email
    ])
    truth = np.argmax(clear @ TRUE_THETA.T, axis=1)
    np.testing.assert_array_equal(np.argmax(policy.expected_rewards(clear), axis=1), truth)
    np.testing.assert_allclose(policy.theta, TRUE_THETA, atol=0.15)
    probs = policy.probabilities(clear, np.ones((4, 3), dtype=bool))
    np.testing.assert_allclose(probs[np.arange(4), truth], 0.95 + 0.05 / 3)


# ---------------------------------------------------------------- cold start


def test_the_prior_is_the_exact_ridge_with_an_unpenalised_intercept_even_with_constant_columns(
    spark: SparkSession,
) -> None:
    """A bias slot, context slots no example has yet and an action never logged are constant columns:
    Spark's normal equations are singular on them and used to fall back to L-BFGS. The fit must be the
    closed-form ridge of Spark's documented objective, 1/2n ||y - b - Xw||² + λ/(2 σ_y) ||w||²."""
    rng = np.random.default_rng(3)
    n, actions = 400, ["a", "b", "c", "never"]
    x = np.c_[np.ones(n), rng.normal(size=(n, 3)), np.zeros((n, 2))]
    chosen = rng.integers(0, 3, n)
    r = 0.2 + 0.5 * x[:, 1] - 0.3 * x[:, 3] + np.array([0.0, 0.4, -0.2])[chosen] + rng.normal(size=n)
    df = spark.createDataFrame([(x[i].tolist(), actions[chosen[i]], float(r[i])) for i in range(n)],
                               "context array<double>, action string, reward double")
    prior = fit_engagement_prior(df, action_ids=actions, reg_param=0.5)

    design = np.c_[x, np.eye(len(actions))[chosen]]
    varying = design.std(axis=0) > 0
    centred = design[:, varying] - design[:, varying].mean(axis=0)
    lam = 0.5 / r.std()
    w = np.linalg.solve(centred.T @ centred / n + lam * np.eye(varying.sum()), centred.T @ (r - r.mean()) / n)
    coef = np.zeros(design.shape[1])
    coef[varying] = w
    coef[0] = r.mean() - design[:, varying].mean(axis=0) @ w  # the intercept, in the bias slot
    np.testing.assert_allclose(prior.context_weights, coef[:6], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(prior.action_offsets, coef[6:], rtol=1e-7, atol=1e-9)
    assert prior.action_offsets[3] == 0.0 and prior.context_weights[4] == prior.context_weights[5] == 0.0
    np.testing.assert_allclose(prior.prior_mean[:, 0], coef[0] + coef[6:], rtol=1e-7, atol=1e-9)

    with pytest.raises(ValueError, match="bias_index"):
        fit_engagement_prior(df, action_ids=actions, bias_index=1)  # slot 1 is not constantly 1
    alike = spark.createDataFrame([([1.0, 0.0], "a", 1.0), ([1.0, 0.0], "a", 0.0)],
                                  "context array<double>, action string, reward double")
    flat = fit_engagement_prior(alike, action_ids=["a", "b"])  # nothing varies: the mean reward is the model
    np.testing.assert_array_equal(flat.prior_mean, [[0.5, 0.0], [0.5, 0.0]])
    assert flat.training_rmse == 0.5


def test_hold_is_left_out_of_the_pooled_context_weights(spark: SparkSession) -> None:
    """Touches share a slope on x1; a hold earns the constant default. Pooled with the touches, hold's
    flat rows pull the shared slope towards zero; left out, it keeps its own mean and no slope."""
    rng = np.random.default_rng(5)
    n, actions = 1200, ["hold", "email@1d", "push@1d"]
    x = np.c_[np.ones(n), rng.normal(size=(n, 2))]
    chosen = rng.integers(0, 3, n)
    r = np.where(chosen == 0, 0.0, 0.1 + 1.0 * x[:, 1] + np.array([0.0, 0.3, -0.2])[chosen] + 0.3 * rng.normal(size=n))
    rows = [(x[i].tolist(), actions[chosen[i]], float(r[i])) for i in range(n)]
    df = spark.createDataFrame(rows, "context array<double>, action string, reward double")
    touches_only = spark.createDataFrame([row for row in rows if row[1] != "hold"],
                                         "context array<double>, action string, reward double")

    pooled = fit_engagement_prior(df, action_ids=actions, pooled=actions[1:])
    alone = fit_engagement_prior(touches_only, action_ids=actions[1:])
    np.testing.assert_allclose(pooled.context_weights, alone.context_weights, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(pooled.prior_mean[1:], alone.prior_mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(pooled.prior_mean[0], [0.0, 0.0, 0.0])  # hold: its mean reward, no slope
    assert pooled.action_offsets[0] == 0.0
    assert abs(pooled.context_weights[1] - 1.0) < 0.05
    every = fit_engagement_prior(df, action_ids=actions)  # the old way: about a third of the rows are flat
    assert every.context_weights[1] < 0.8

    shifted = spark.createDataFrame([(c, a, rw + (0.25 if a == "hold" else 0.0)) for c, a, rw in rows],
                                    "context array<double>, action string, reward double")
    np.testing.assert_allclose(fit_engagement_prior(shifted, action_ids=actions, pooled=actions[1:]).prior_mean[0],
                               [0.25, 0.0, 0.0], atol=1e-12)
    unlogged = fit_engagement_prior(touches_only, action_ids=actions, pooled=actions[1:])
    np.testing.assert_array_equal(unlogged.prior_mean[0], [0.0, 0.0, 0.0])  # no hold rows: zero
    with pytest.raises(ValueError, match="not in action_ids"):
        fit_engagement_prior(df, action_ids=actions, pooled=["sms@1d"])


def test_a_training_of_holds_alone_pools_every_action(spark: SparkSession, tmp_path: Path) -> None:
    """Before any touch is logged there is nothing to pool but the holds: the fit still runs, on the old
    all-action prior, and every action starts from the holds' mean reward."""
    sim = simulate_logged(200, seed=4)
    sim["a"][:] = 0
    sim["r"] = np.full(200, 0.125)
    training = logged_frame(spark, sim, partitions=2)
    result = train_policy(spark, two_channel_config(tmp_path), training, phase="fit", register=False,
                          settings=LearningSettings(min_training_examples=10))
    assert result.policy is not None and result.prior_mean is not None
    np.testing.assert_allclose(result.prior_mean[:, 0], 0.125, atol=1e-9)
    np.testing.assert_allclose(result.prior_mean[:, 1:], 0.0, atol=1e-12)


def test_cold_start_prior_lowers_regret_on_a_small_population(spark: SparkSession) -> None:
    k, d = 4, 4
    shared = np.array([0.0, 0.8, -0.5, 0.3])
    offsets = np.array([0.0, 0.4, -0.3, 0.2])
    theta = np.tile(shared, (k, 1))
    theta[:, 0] += offsets
    theta[:, 1] += np.array([0.0, 0.25, -0.25, 0.1])  # actions differ in slope too
    actions = ("a0", "a1", "a2", "a3")
    test_x = np.c_[np.ones(4000), np.random.default_rng(99).normal(size=(4000, d - 1))]
    best = (test_x @ theta.T).max(axis=1)
    cold, warm = [], []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        n = 28
        x = np.c_[np.ones(n), rng.normal(size=(n, d - 1))]
        a = np.arange(n) % k
        r = np.einsum("nd,nd->n", x, theta[a]) + 0.7 * rng.normal(size=n)
        df = spark.createDataFrame(
            [(x[i].tolist(), actions[a[i]], float(r[i])) for i in range(n)],
            "context array<double>, action string, reward double",
        )
        stats = statistics_from_arrays(x, [actions[i] for i in a], r, action_ids=actions)
        plain = fit_linear_bandit(stats, ridge_lambda=1.0)
        prior = fit_engagement_prior(df, action_ids=actions)
        warmed = fit_linear_bandit(stats, prior_mean=prior.prior_mean, prior_strength=5.0)
        for model, out in ((plain, cold), (warmed, warm)):
            chosen = np.argmax(model.expected_rewards(test_x), axis=1)
            out.append(float(np.mean(best - (test_x @ theta.T)[np.arange(len(test_x)), chosen])))
    assert np.mean(warm) < 0.8 * np.mean(cold), (warm, cold)


# ---------------------------------------------------------------- training set


def test_training_set_joins_closed_outcomes_with_point_in_time_context(spark: SparkSession) -> None:
    t = datetime(2026, 3, 1, 12)
    decision_fields = {f.name: None for f in GOLD_CADENCE_DECISIONS.fields}

    def decision(did: str, lead: str, at: datetime, action: str, probs: dict[str, float]) -> dict[str, object]:
        return {**decision_fields, "decision_id": did, "lead_id": lead, "region": "us", "decided_at": at,
                "trigger": "review", "trigger_type": "review", "action_id": action,
                "channel": None if action == "hold" else action.split("@")[0], "delay": None, "send_at": None,
                "propensity": probs[action], "action_probs": probs, "expected_rewards": None, "explored": False,
                "holdout": False, "guardrails": [], "policy_kind": "logging", "model_name": "m",
                "model_version": "logging", "mlflow_run_id": "", "policy_config_hash": "h",
                "feature_table_version": 0, "feature_as_of": at, "job_run_id": "j", "batch_id": 0,
                "code_version": "c"}

    probs = {"hold": 0.25, "email@1d": 0.75}
    decisions = spark.createDataFrame([
        decision("d1", "L1", t, "email@1d", probs),
        decision("d2", "L1", t + timedelta(days=2), "hold", probs),
        decision("d3", "L2", t, "hold", {"hold": 1.0}),        # window still open: no outcome
    ], GOLD_CADENCE_DECISIONS)
    outcomes = spark.createDataFrame([
        ("d1", "L1", "us", "email@1d", "email", 0.75, False, "logging", t, None, t + timedelta(days=7), 1.0,
         {"email_click": 1.0}, ["e9"], False, t + timedelta(days=8)),
        ("d2", "L1", "us", "hold", None, 0.25, False, "logging", t + timedelta(days=2), None,
         t + timedelta(days=9), -5.0, {"email_unsubscribe": -5.0}, ["e10"], True, t + timedelta(days=10)),
    ], GOLD_DECISION_OUTCOMES)
    events = spark.createDataFrame([
        ("L1", t - timedelta(days=1)), ("L1", t + timedelta(days=1)), ("L1", t + timedelta(days=3)),
        ("L2", t - timedelta(days=5)),
    ], "lead_id string, occurred_at timestamp")

    def contexts(lead_events: DataFrame, requests: DataFrame) -> DataFrame:
        # Context = [bias, number of events known at as_of].
        known = requests.join(lead_events, "lead_id", "left").groupBy("lead_id", "as_of").agg(
            F.sum(F.when(F.col("occurred_at") <= F.col("as_of"), 1.0).otherwise(0.0)).alias("n"))
        return known.select("lead_id", "as_of", F.array(F.lit(1.0), F.col("n")).alias("context"))

    out = build_training_set(decisions, outcomes, lead_events=events, context_fn=contexts)
    # d3, made at t, is still open: no row from t on is complete (which of them closed depended on their action).
    expected = spark.createDataFrame([
        ("d1", "L1", "us", t, [1.0, 1.0], "email@1d", 0.75, 1.0, False, ["email@1d", "hold"], probs, False, "logging",
         False),
        ("d2", "L1", "us", t + timedelta(days=2), [1.0, 2.0], "hold", 0.25, -5.0, True, ["email@1d", "hold"], probs,
         False, "logging", False),
    ], "decision_id string, lead_id string, region string, decided_at timestamp, context array<double>, "
       "action string, propensity double, reward double, harm boolean, allowed_actions array<string>, "
       "logged_probs map<string,double>, holdout boolean, logged_model_version string, complete boolean")
    assertDataFrameEqual(out, expected)
    # Only windows closed by as_of.
    early = build_training_set(decisions, outcomes, lead_events=events, context_fn=contexts,
                               as_of=t + timedelta(days=7, hours=1))
    assert [r.decision_id for r in early.collect()] == ["d1"]
    # Once d3 is closed too, every row is complete.
    d3 = spark.createDataFrame([("d3", "L2", "us", "hold", None, 1.0, False, "logging", t, None, t + timedelta(days=3),
                                 0.0, {}, [], False, t + timedelta(days=4))], GOLD_DECISION_OUTCOMES)
    every = build_training_set(decisions, outcomes.unionByName(d3), lead_events=events, context_fn=contexts)
    assert sorted((r.decision_id, r.complete) for r in every.collect()) == [("d1", True), ("d2", True), ("d3", True)]


def test_only_decisions_whose_presence_does_not_depend_on_their_action_validate(spark: SparkSession) -> None:
    """Near the end of the data only short waits have closed; validation must not see that skewed sample."""
    t = datetime(2026, 3, 1)
    as_of = t + timedelta(days=20)
    waits = {"hold": timedelta(0), "email@4h": timedelta(hours=4), "email@7d": timedelta(days=7)}
    window = timedelta(days=3)
    actions = list(waits)
    probs = dict.fromkeys(actions, 1 / 3)
    decision_fields = {f.name: None for f in GOLD_CADENCE_DECISIONS.fields}
    decisions, outcomes, made = [], [], []
    for i in range(20 * 8):  # one decision every 3 hours for 20 days, the uniform logger's actions in turn
        at, action, did = t + timedelta(hours=3 * i), actions[i % 3], f"d{i:03d}"
        send_at = None if action == "hold" else at + waits[action]
        decisions.append({**decision_fields, "decision_id": did, "lead_id": f"L{i}", "region": "us", "decided_at": at,
                          "trigger": "review", "trigger_type": "review", "action_id": action, "channel": None,
                          "send_at": send_at, "propensity": 1 / 3, "action_probs": probs, "explored": True,
                          "holdout": False, "guardrails": [], "policy_kind": "logging", "model_name": "m",
                          "model_version": "logging", "mlflow_run_id": "", "policy_config_hash": "h",
                          "feature_table_version": 0, "feature_as_of": at, "job_run_id": "j", "batch_id": 0,
                          "code_version": "c"})
        window_end = (send_at or at) + window
        made.append((did, at, action, window_end <= as_of))
        if window_end <= as_of:
            outcomes.append((did, f"L{i}", "us", action, None, 1 / 3, False, "logging", at, send_at, window_end, 0.0,
                             {}, [], False, window_end))
    events = spark.createDataFrame([(f"L{i}", t) for i in range(len(made))], "lead_id string, occurred_at timestamp")

    def contexts(lead_events: DataFrame, requests: DataFrame) -> DataFrame:
        return requests.select("lead_id", "as_of", F.array(F.lit(1.0)).alias("context"))

    training = build_training_set(
        spark.createDataFrame(decisions, GOLD_CADENCE_DECISIONS),
        spark.createDataFrame(outcomes, GOLD_DECISION_OUTCOMES),
        lead_events=events, context_fn=contexts, as_of=as_of,
    ).cache()
    open_since = min(at for _, at, _, closed in made if not closed)
    # 7-day waits are made every 9 hours from 06:00; the one at day 10 closes exactly at as_of, the next is open.
    assert open_since == t + timedelta(days=10, hours=9)
    closed = [(did, at, action) for did, at, action, is_closed in made if is_closed]
    assertDataFrameEqual(
        training.select("decision_id", "complete"),
        spark.createDataFrame([(did, at < open_since) for did, at, _ in closed],
                              "decision_id string, complete boolean"),
    )
    train, valid, cutoff = split_training_set(training, LearningSettings(validation_fraction=0.3))
    complete = sorted(at for _, at, _ in closed if at < open_since)
    # Spark's exact percentile (linear interpolation), over the complete rows only.
    micros = np.quantile([(at - t) // timedelta(microseconds=1) for at in complete], 0.7)
    assert cutoff == t + timedelta(microseconds=int(micros))
    expected_valid = [(did, action) for did, at, action in closed if cutoff <= at < open_since]
    assertDataFrameEqual(valid.select("decision_id", "action"),
                         spark.createDataFrame(expected_valid, "decision_id string, action string"))
    # The validation sample is the logger's: each action a third of it, as its propensities say.
    counts = {a: sum(1 for _, act in expected_valid if act == a) for a in actions}
    assert max(counts.values()) - min(counts.values()) <= 1, counts
    # The closed rows after it (short waits only) train neither: the fit compares actions over the same stretch.
    assertDataFrameEqual(
        train.select("decision_id"),
        spark.createDataFrame([(did,) for did, at, _ in closed if at < cutoff], "decision_id string"),
    )
    assert {action for _, at, action in closed if at >= open_since} == {"hold", "email@4h"}
    # Before any decision is complete there is nothing to train on or validate.
    early_train, early_valid, early_cutoff = split_training_set(training.where("NOT complete"), LearningSettings())
    assert (early_train.count(), early_valid.count(), early_cutoff) == (0, 0, None)


# ---------------------------------------------------------------- tuning


def test_hyperopt_tuning_improves_on_the_logging_policy(spark: SparkSession) -> None:
    sim = simulate_logged(900, seed=5)
    frame = logged_frame(spark, sim, partitions=2)
    train = frame.where(F.col("decided_at") < F.lit(T0 + timedelta(minutes=600)))
    valid = frame.where(F.col("decided_at") >= F.lit(T0 + timedelta(minutes=600)))
    settings = LearningSettings(ope_bootstrap=50, thompson_draws=200, tuning_max_evals=4, seed=3)
    stats = sufficient_statistics(train, action_ids=ACTIONS)
    result = tune_policy([TuningFold(stats, valid)], settings=settings)
    assert len(result.trials) == 4
    # The space is conditional: a trial carries only the parameter its strategy reads, and no λ (the
    # evidence sets each action's λ under the default ridge_auto).
    own = {"thompson": {"exploration_scale"}, "linucb": {"exploration_scale"}, "softmax": {"temperature"},
           "epsilon_greedy": set()}
    for trial in result.trials:
        assert set(trial) - {"objective", "dr_estimate", "dr_lower"} == {
            "strategy", "exploration_floor", *own[trial["strategy"]]}
    assert result.best_objective == max(t["objective"] for t in result.trials)
    # The objective is reproducible: refitting the best parameters gives the same DR lower bound.
    best = fit_with_params(stats, result.best_params, settings=settings)
    dr = policy_estimates(with_target(valid, best, seed=settings.seed), estimators=("dr",), n_bootstrap=50,
                          alpha=settings.ope_alpha, seed=settings.seed)["dr"]
    assert dr.lower == pytest.approx(result.best_objective, abs=1e-9)
    # The logging policy (uniform) earns the mean logged reward; the tuned bandit does clearly better.
    assert dr.lower > float(sim["r"][600:].mean()) + 0.2


def test_lambda_is_searched_only_where_the_fit_uses_it() -> None:
    sim = simulate_logged(300, seed=8)
    stats = statistics_from_arrays(sim["x"], [ACTIONS[a] for a in sim["a"]], sim["r"], action_ids=ACTIONS)
    prior = np.full((len(ACTIONS), sim["x"].shape[1]), 0.1)
    fixed = LearningSettings(ridge_auto=False)
    # With the pooled prior, its precision replaces λ: two λ far apart give the same fit.
    low, high = (fit_with_params(stats, {"ridge_lambda": lam}, settings=fixed, prior_mean=prior) for lam in (0.01, 100.0))
    np.testing.assert_array_equal(low.theta, high.theta)
    # Without a prior and with a fixed λ, λ shapes the fit, and only then is it searched.
    low, high = (fit_with_params(stats, {"ridge_lambda": lam}, settings=fixed) for lam in (0.01, 100.0))
    assert np.abs(low.theta - high.theta).max() > 0.01
    assert lambda_is_used(fixed, [None, None])
    assert not lambda_is_used(fixed, [None, prior])
    assert not lambda_is_used(LearningSettings(ridge_auto=True), [None])
    assert "ridge_lambda" in search_space(tune_lambda=True) and "ridge_lambda" not in search_space(tune_lambda=False)


def test_hyperopt_never_scores_its_trials_on_the_decisions_the_gate_scores(spark: SparkSession, tmp_path: Path) -> None:
    conf = two_channel_config(tmp_path)
    settings = LearningSettings(ope_bootstrap=20, thompson_draws=200, tuning_max_evals=3, seed=3,
                                cold_start_min_examples=0, min_training_examples=10, tuning_fraction=0.5,
                                tuning_folds=3)
    sim = simulate_logged(600, seed=13)  # one decision a minute

    def tuned(rewards: np.ndarray) -> tuple[TrainResult, DataFrame]:
        frame = logged_frame(spark, {**sim, "r": rewards}, partitions=2).cache()
        return train_policy(spark, conf, frame, phase="tune", register=False, settings=settings), frame

    base, frame = tuned(sim["r"])
    assert base.tuning is not None
    # Spark's exact percentiles: validation from minute 419.3 of 0..599; hyperopt's three folds score the
    # latest half of the 420 training minutes 0..419 from minutes 209.5, 279.33 and 349.17.
    assert base.cutoff == T0 + timedelta(minutes=419.3)
    assert [(start - T0) / timedelta(minutes=1) for start in base.tuning.fold_starts] == pytest.approx(
        [209.5, 279 + 1 / 3, 349 + 1 / 6], abs=1e-6)
    assert base.tuning.cutoff == base.tuning.fold_starts[0]
    assert (base.n_train, base.n_validation, base.tuning.n_fit, base.tuning.n_scored) == (420, 180, 210, 210)
    assert "on 3 rolling-origin folds (the first fitted on 210 decisions; 210 scored)" in base.tuning.describe()
    # Each fold's trial fitted on the minutes before its slice; the objective is the DR lower bound of the
    # three slices pooled, each scored by its own fold's fit.
    at = F.col("decided_at")
    ends = [*base.tuning.fold_starts[1:], base.cutoff]
    scored = [
        with_target(frame.where((at >= F.lit(start)) & (at < F.lit(end))),
                    fit_with_params(sufficient_statistics(frame.where(at < F.lit(start)), action_ids=ACTIONS),
                                    base.tuning.best_params, settings=settings,
                                    max_exploration_rate=exploration_cap(conf)),
                    seed=settings.seed)
        for start, end in zip(base.tuning.fold_starts, ends, strict=True)
    ]
    pooled = scored[0].unionByName(scored[1]).unionByName(scored[2])
    dr = policy_estimates(pooled, estimators=("dr",), n_bootstrap=20, alpha=settings.ope_alpha,
                          seed=settings.seed)["dr"]
    assert dr.lower == pytest.approx(base.tuning.best_objective, abs=1e-9)
    # Whatever the validation decisions' rewards, the search runs the same trials and picks the same.
    minute = np.arange(600)
    garbled, _ = tuned(np.where(minute >= 420, 5.0 - 10.0 * sim["r"], sim["r"]))
    assert garbled.tuning is not None and garbled.params == base.params
    assert [t["objective"] for t in garbled.tuning.trials] == pytest.approx(
        [t["objective"] for t in base.tuning.trials], abs=1e-9)


def test_training_decisions_made_at_one_time_fit_with_the_configured_hyper_parameters(
    spark: SparkSession, tmp_path: Path,
) -> None:
    conf = two_channel_config(tmp_path)
    settings = LearningSettings(ope_bootstrap=20, thompson_draws=200, tuning_max_evals=2, seed=3,
                                cold_start_min_examples=0, min_training_examples=10)
    # As in the closed loop, whose decisions of one tick share decided_at: the training part is one tick.
    frame = logged_frame(spark, simulate_logged(600, seed=14), partitions=2).withColumn(
        "decided_at", F.when(F.col("decided_at") < F.lit(T0 + timedelta(minutes=420)), F.lit(T0))
        .otherwise(F.col("decided_at")),
    ).cache()
    result = train_policy(spark, conf, frame, phase="all", register=False, settings=settings)
    fitted = train_policy(spark, conf, frame, phase="fit", register=False, settings=settings)
    assert result.tuning is None and result.tuning_skipped is not None
    assert "cannot be split by time" in result.tuning_skipped
    assert result.params == fitted.params and result.policy is not None and fitted.policy is not None
    np.testing.assert_array_equal(result.policy.theta, fitted.policy.theta)
    assert result.estimates["dr"] == fitted.estimates["dr"]
    with pytest.raises(NotEnoughData, match="cannot be split by time"):
        train_policy(spark, conf, frame, phase="tune", register=False, settings=settings)


def test_settings_from_config(cfg: NurtureConfig) -> None:
    assert LearningSettings.from_config(cfg).strategy == "thompson"
    custom = cfg.model_copy(update={"extra": {**cfg.extra, "learning": {"strategy": "softmax", "temperature": 2}}})
    assert LearningSettings.from_config(custom).temperature == 2.0
    bad = cfg.model_copy(update={"extra": {**cfg.extra, "learning": {"strategy": "greedy"}}})
    with pytest.raises(ValueError, match="learning"):
        LearningSettings.from_config(bad)


def test_training_set_with_the_feature_module_context(spark: SparkSession, cfg: NurtureConfig) -> None:
    """The production context function (compute_features + context_vector) plugs into the builder."""
    from nurture_lake.features import CONTEXT_COLUMNS
    from nurture_lake.policy.training_set import feature_context_fn

    t = datetime(2026, 3, 2, 15)
    decisions = spark.createDataFrame(
        [("d1", "L1", "us", t, "email@1d", 0.5, {"hold": 0.5, "email@1d": 0.5}, False, "logging")],
        "decision_id string, lead_id string, region string, decided_at timestamp, action_id string, "
        "propensity double, action_probs map<string,double>, holdout boolean, model_version string",
    )
    outcomes = spark.createDataFrame([("d1", 1.0, False, t + timedelta(days=7))],
                                     "decision_id string, reward double, harm boolean, window_end timestamp")
    events = spark.createDataFrame([
        ("e1", "lead_created", t - timedelta(days=10), "us", "L1", t - timedelta(days=10)),
        ("e2", "email_sent", t - timedelta(days=2), "us", "L1", t - timedelta(days=2)),
        ("e3", "email_sent", t + timedelta(hours=1), "us", "L1", t + timedelta(hours=1)),  # after decided_at
    ], "event_id string, event_type string, occurred_at timestamp, region string, lead_id string, "
       "ingested_at timestamp")
    row = build_training_set(decisions, outcomes, lead_events=events, context_fn=feature_context_fn(cfg)).first()
    # The context is the feature module's, with one region slot per configured region (as scoring builds it).
    names = context_columns(FeatureSettings.from_config(cfg), regions=list(cfg.regions))
    assert row is not None and len(row.context) == len(names) == len(CONTEXT_COLUMNS) + len(cfg.regions)
    ctx = dict(zip(names, row.context, strict=True))
    assert ctx["bias"] == 1.0
    assert ctx["n_email_sent_7d"] == pytest.approx(np.log1p(1.0))   # the later email is not known yet
    assert ctx["n_email_sent_1d"] == 0.0
