# Databricks notebook source
# MAGIC %md
# MAGIC # 03 · Features: what the policy knows about a lead
# MAGIC
# MAGIC `gold.lead_features` holds each lead's latest features (refreshed incrementally by the `features` job).
# MAGIC Training and scoring compute the context with the same code, point-in-time correct: only what was
# MAGIC known at the decision time.

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

from nurture_lake.config import load_config
from nurture_lake.spark import get_spark
from nurture_lake.tables import Lake

cfg = load_config(ENV, overrides=OVERRIDES)
spark = get_spark(cfg, app_name="nurture_lake.notebook")
lake = Lake(cfg)

# COMMAND ----------

import pandas as pd

from nurture_lake.features import FeatureSettings, describe_features

settings = FeatureSettings.from_config(cfg)
feature_dictionary = pd.DataFrame([vars(c) for c in describe_features(settings)])
print(f"{len(feature_dictionary)} numeric features (feature_version {settings.feature_version})")
display(feature_dictionary)

# COMMAND ----------

# MAGIC %md
# MAGIC ## The feature table

# COMMAND ----------

from nurture_lake.features import latest_features_version, read_lead_features

lead_features = read_lead_features(spark, lake, REGION)
print(f"{REGION}.gold.lead_features version {latest_features_version(spark, lake, REGION)}")
display(lead_features.drop("history"))

# COMMAND ----------

# MAGIC %md
# MAGIC ## The context vector the policy scores (as of each row's `as_of`)

# COMMAND ----------

from nurture_lake.features import context_columns, context_vector, features_from_table

requests = lead_features.select("lead_id", "region", "as_of")
features_now = features_from_table(lead_features, requests, regions=cfg.regions, settings=settings)
contexts = context_vector(features_now, settings=settings, regions=list(cfg.regions))
print(f"context length {len(context_columns(settings, regions=list(cfg.regions)))}")
display(contexts.select("lead_id", "as_of", "context"))
