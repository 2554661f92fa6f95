# Databricks notebook source
# MAGIC %md
# MAGIC # 01 · Events: landing → bronze → silver (+ quarantine, consent)
# MAGIC
# MAGIC The `ingest` job (`nurture-lake ingest`, Structured Streaming with `availableNow`) validates every landing
# MAGIC event against the contract. Valid rows land in `silver.events` (typed, deduplicated, identifiers replaced by
# MAGIC keyed pseudonyms); broken rows go to `silver.events_quarantine` with a machine-readable reason — never dropped.

# COMMAND ----------

# Where to run: NURTURE_LAKE_ENV (conf name or YAML path), NURTURE_LAKE_LAKE_ROOT, NURTURE_LAKE_REGION
# in the cluster's or shell's environment (see nurture_lake.notebook).
from nurture_lake.notebook import notebook_context, show

cfg, spark, lake, REGION = notebook_context()
if "display" not in globals():  # outside Databricks: print the first rows instead
    display = show

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
