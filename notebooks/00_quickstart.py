# Databricks notebook source
# MAGIC %md
# MAGIC # 00 · Quickstart
# MAGIC
# MAGIC nurture_lake decides, for every lead, which channel to touch next and when — and learns that cadence
# MAGIC from the outcomes. These notebooks walk the pipeline in order and hold no logic of their own: every
# MAGIC cell calls the same library functions the jobs run.
# MAGIC
# MAGIC | notebook | shows |
# MAGIC | --- | --- |
# MAGIC | `01_events` | landing events → `silver.events`, quarantine reasons, consent |
# MAGIC | `02_identity` | the identity graph: stable lead ids, merges |
# MAGIC | `03_features` | `gold.lead_features` and the context vector the policy sees |
# MAGIC | `04_training_and_ope` | training set, bandit fit, off-policy evaluation |
# MAGIC | `05_decisions_for_bi` | `gold.cadence_decisions` read without Spark (`deltalake`), as a BI tool would |
# MAGIC
# MAGIC **A demo lake** locally: `make demo` (or `nurture-lake demo --leads 400 --days 9`). On Databricks the
# MAGIC jobs `nurture_lake_streaming` / `nurture_lake_learning` fill the catalog (`nurture-lake deploy`).

# COMMAND ----------

# Where to run: NURTURE_LAKE_ENV (conf name or YAML path), NURTURE_LAKE_LAKE_ROOT, NURTURE_LAKE_REGION
# in the cluster's or shell's environment (see nurture_lake.notebook).
from nurture_lake.notebook import notebook_context, show

cfg, spark, lake, REGION = notebook_context()
if "display" not in globals():  # outside Databricks: print the first rows instead
    display = show

# COMMAND ----------

# MAGIC %md
# MAGIC ## Configuration
# MAGIC One frozen, typed model per environment (`conf/<env>.yaml`); the hash goes into every audit row and decision.

# COMMAND ----------

print(f"environment {cfg.env}, config hash {cfg.config_hash()}, storage {cfg.storage.kind}")
regions = {code: region.model_dump() for code, region in cfg.regions.items()}
display(regions)

# COMMAND ----------

# MAGIC %md
# MAGIC ## The tables of one region
# MAGIC Every table is Delta; `Lake` resolves where it lives (a path locally, `<catalog>.<schema>.<table>` on Databricks).

# COMMAND ----------

import pandas as pd

REGION_TABLES = [
    ("bronze", "events_raw"), ("silver", "events"), ("silver", "events_quarantine"), ("silver", "consent_current"),
    ("silver", "identity_graph"), ("silver", "lead_merges"), ("gold", "lead_features"),
    ("gold", "cadence_decisions"), ("gold", "decision_outcomes"),
]
refs = [lake.table(REGION, layer, name) for layer, name in REGION_TABLES]
inventory = pd.DataFrame(
    [{"table": ref.label, "location": ref.path or ref.full_name, "version": ref.version(spark)} for ref in refs]
)
display(inventory)
