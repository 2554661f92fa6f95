# Databricks notebook source
# MAGIC %md
# MAGIC # 04 · Training and off-policy evaluation
# MAGIC
# MAGIC The `train` job joins closed decisions with their outcomes and the point-in-time context, fits the
# MAGIC contextual bandit from per-action sufficient statistics aggregated on Spark, and estimates its value
# MAGIC **off-policy** (IPS, SNIPS, DM, DR with bootstrap intervals) on the latest decisions before it is allowed
# MAGIC near a lead. Here we run the same functions interactively; nothing is registered unless `REGISTER` is set.

# COMMAND ----------

# Where to run: NURTURE_LAKE_ENV (conf name or YAML path), NURTURE_LAKE_LAKE_ROOT, NURTURE_LAKE_REGION
# in the cluster's or shell's environment (see nurture_lake.notebook).
from nurture_lake.notebook import notebook_context, show

cfg, spark, lake, REGION = notebook_context()
if "display" not in globals():  # outside Databricks: print the first rows instead
    display = show

# COMMAND ----------

import os

REGISTER = os.environ.get("NURTURE_LAKE_REGISTER", "0") == "1"  # log to MLflow + alias "challenger", as the job does

# COMMAND ----------

from nurture_lake.policy import LearningSettings, build_training_set, read_training_inputs
from nurture_lake.policy.training_set import feature_context_fn, read_lead_events

learning = LearningSettings.from_config(cfg)
inputs = read_training_inputs(spark, lake, regions=[REGION])
lead_events, event_versions = read_lead_events(spark, lake, regions=[REGION])
if inputs is None or lead_events is None:
    raise RuntimeError("no decisions, outcomes or events yet: run the demo (make demo) or the jobs first")
training = build_training_set(
    inputs.decisions, inputs.outcomes, lead_events=lead_events,
    context_fn=feature_context_fn(cfg, context_col=learning.context_col), context_col=learning.context_col,
).localCheckpoint()  # computed once: train_policy unpersists cached inputs when done
print(f"{training.count()} closed decisions, {training.where('complete').count()} complete; "
      f"input versions {inputs.versions | event_versions}")
display(training.select("decision_id", "lead_id", "decided_at", "action", "propensity", "reward", "allowed_actions"))

# COMMAND ----------

# MAGIC %md
# MAGIC ## Fit the bandit (configured hyper-parameters) and estimate it on the held-out latest decisions

# COMMAND ----------

import pandas as pd

from nurture_lake.policy import train_policy

result = train_policy(spark, cfg, training, phase="fit", input_versions=inputs.versions, register=REGISTER)
print(f"{result.n_train} train / {result.n_validation} validation decisions, params {result.params}, "
      f"cold start {result.cold_start}")
estimates = pd.DataFrame([vars(e) for e in result.estimates.values()])
display(estimates)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Every estimator and the support diagnostics, over the complete decisions
# MAGIC Complete: made before the earliest decision whose reward window is still open, so which of them are
# MAGIC here does not depend on the action taken (later on, only the short waits have closed).

# COMMAND ----------

from nurture_lake.evaluation import OpeSettings, off_policy_estimates
from nurture_lake.policy import with_target

scored = with_target(training.where("complete"), result.policy, seed=learning.seed, context_col=learning.context_col)
ope = off_policy_estimates(scored, **OpeSettings.from_config(cfg).as_kwargs())
ope_table = ope.to_pandas()
display(ope_table)
display(ope.diagnostics.to_dict())
