# Databricks notebook source
# MAGIC %md
# MAGIC # 03 · Features: what the policy knows about a lead
# MAGIC
# MAGIC `gold.lead_features` holds each lead's latest features (refreshed incrementally by the `features` job).
# MAGIC Training and scoring compute the context with the same code, point-in-time correct: only what was
# MAGIC known at the decision time.

# COMMAND ----------

# Where to run: NURTURE_LAKE_ENV (conf name or YAML path), NURTURE_LAKE_LAKE_ROOT, NURTURE_LAKE_REGION
# in the cluster's or shell's environment (see nurture_lake.notebook).
from nurture_lake.notebook import notebook_context, show

cfg, spark, lake, REGION = notebook_context()
if "display" not in globals():  # outside Databricks: print the first rows instead
    display = show

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
