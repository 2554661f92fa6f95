# Databricks notebook source
# MAGIC %md
# MAGIC # 02 · Identity: identifiers seen together → one lead with a stable id
# MAGIC
# MAGIC The `identity` job links identifier pseudonyms that appear in the same event (e-mail, phone, CRM id,
# MAGIC device, cookies) into connected components. Each component is a lead with a stable `lead_id`; when two
# MAGIC leads merge, `silver.lead_merges` records which id survived.

# COMMAND ----------

# Where to run: NURTURE_LAKE_ENV (conf name or YAML path), NURTURE_LAKE_LAKE_ROOT, NURTURE_LAKE_REGION
# in the cluster's or shell's environment (see nurture_lake.notebook).
from nurture_lake.notebook import notebook_context, show

cfg, spark, lake, REGION = notebook_context()
if "display" not in globals():  # outside Databricks: print the first rows instead
    display = show

# COMMAND ----------

from pyspark.sql import functions as F

from nurture_lake.identity import attach_lead_id, identity_tables

tables = identity_tables(lake, REGION)
graph = tables.graph.read(spark)
display(graph)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Leads by number of linked identifiers

# COMMAND ----------

lead_sizes = (
    graph.groupBy("lead_id").agg(F.count("*").alias("identifiers"))
    .groupBy("identifiers").agg(F.count("*").alias("leads")).orderBy("identifiers")
)
display(lead_sizes)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Merges and the events of each lead
# MAGIC Downstream code never joins on raw identifiers: `attach_lead_id` gives every event its lead.

# COMMAND ----------

merges = tables.merges.read(spark) if tables.merges.exists(spark) else None
if merges is not None:
    display(merges)
lead_events = attach_lead_id(tables.events.read(spark), graph)
display(lead_events.select("lead_id", "event_type", "channel", "occurred_at"))
