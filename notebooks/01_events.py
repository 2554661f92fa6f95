# Databricks notebook source
# MAGIC %md
# MAGIC # 01 · Events: landing → bronze → silver (+ quarantine, consent)
# MAGIC
# MAGIC The `ingest` job (`nurture-lake ingest`, Structured Streaming with `availableNow`) validates every landing
# MAGIC event against the contract. Valid rows land in `silver.events` (typed, deduplicated, identifiers replaced by
# MAGIC keyed pseudonyms); broken rows go to `silver.events_quarantine` with a machine-readable reason — never dropped.

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

from pyspark.sql import functions as F

from nurture_lake.ingest import IngestTables

tables = IngestTables.for_region(lake, REGION)
events = tables.silver.read(spark)
print(f"{tables.silver.label} version {tables.silver.version(spark)}: {events.count()} events")
display(events.select("event_id", "event_type", "channel", "occurred_at", "ingested_at", "identifiers"))

# COMMAND ----------

# MAGIC %md
# MAGIC ## Event mix by type and channel

# COMMAND ----------

event_mix = events.groupBy("event_type", "channel").count().orderBy(F.desc("count"), "event_type")
display(event_mix)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Quarantine: what broke the contract, and why

# COMMAND ----------

quarantine = tables.quarantine.read(spark)
quarantine_reasons = quarantine.groupBy("reason").count().orderBy(F.desc("count"))
display(quarantine_reasons)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Consent: the current state per pseudonym, channel and purpose

# COMMAND ----------

consent = tables.consent_current.read(spark)
display(consent)
