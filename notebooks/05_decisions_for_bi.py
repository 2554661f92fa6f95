# Databricks notebook source
# MAGIC %md
# MAGIC # 05 · Decisions for BI — no Spark
# MAGIC
# MAGIC `gold.cadence_decisions` is a plain Delta table with a documented schema (`nurture_lake.schemas`), so BI
# MAGIC tools and dispatch services can read it without Spark. Here the `deltalake` package (delta-rs) reads it
# MAGIC straight into pandas. Every row answers *why this action, for whom, under which model, data and rules*.
# MAGIC
# MAGIC On Databricks (Unity Catalog) point BI tools at the table through a SQL warehouse, or give `deltalake`
# MAGIC the table's storage location and cloud credentials.

# COMMAND ----------

# Where to run. Set these in the cluster's / shell's environment, or edit the defaults here:
#   NURTURE_LAKE_ENV        conf/<env>.yaml name ("local", "databricks") or a path to a YAML file
#   NURTURE_LAKE_LAKE_ROOT  overrides storage.lake_root (e.g. a copy of the demo lake)
#   NURTURE_LAKE_REGION     the region these cells look at
import os

ENV = os.environ.get("NURTURE_LAKE_ENV", "local")
LAKE_ROOT = os.environ.get("NURTURE_LAKE_LAKE_ROOT")
REGION = os.environ.get("NURTURE_LAKE_REGION", "us")
OVERRIDES = {"storage.lake_root": LAKE_ROOT} if LAKE_ROOT else {}

if "display" not in globals():  # outside Databricks (plain Python): print the first rows instead
    def display(obj, n: int = 20) -> None:
        print(obj.limit(n).toPandas().to_string() if hasattr(obj, "toPandas") else obj)

# COMMAND ----------

from deltalake import DeltaTable

from nurture_lake.config import load_config
from nurture_lake.schemas import GOLD_CADENCE_DECISIONS
from nurture_lake.tables import Lake

lake = Lake(load_config(ENV, overrides=OVERRIDES))
location = lake.table(REGION, "gold", "cadence_decisions").path
table = DeltaTable(location)
decisions = table.to_pandas()
undocumented = sorted(set(decisions.columns) - set(GOLD_CADENCE_DECISIONS.fieldNames()))
print(f"{location}: version {table.version()}, {len(decisions)} decisions, undocumented columns {undocumented}")
display(decisions[["decision_id", "lead_id", "decided_at", "action_id", "channel", "send_at", "propensity",
                   "explored", "holdout", "model_version"]])

# COMMAND ----------

# MAGIC %md
# MAGIC ## Action mix, holdout share and propensity range

# COMMAND ----------

action_mix = (
    decisions.assign(channel=decisions["channel"].fillna("hold"))
    .groupby("channel").agg(decisions=("decision_id", "size"), mean_propensity=("propensity", "mean"))
    .reset_index()
)
display(action_mix)
display({"holdout_share": float(decisions["holdout"].mean()), "explored_share": float(decisions["explored"].mean()),
         "min_propensity": float(decisions["propensity"].min()), "max_propensity": float(decisions["propensity"].max())})

# COMMAND ----------

# MAGIC %md
# MAGIC ## Lineage of the latest decision per lead
# MAGIC Model version, MLflow run, feature table version and code version — written into the row, not inferred.

# COMMAND ----------

latest = decisions.sort_values("decided_at").groupby("lead_id").tail(1)
display(latest[["lead_id", "action_id", "send_at", "model_name", "model_version", "mlflow_run_id",
                "feature_table_version", "feature_as_of", "policy_config_hash", "code_version", "job_run_id"]])
