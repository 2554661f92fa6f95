# Databricks notebook source
# MAGIC %md
# MAGIC # 02 · Identity: identifiers seen together → one lead with a stable id
# MAGIC
# MAGIC The `identity` job links identifier pseudonyms that appear in the same event (e-mail, phone, CRM id,
# MAGIC device, cookies) into connected components. Each component is a lead with a stable `lead_id`; when two
# MAGIC leads merge, `silver.lead_merges` records which id survived.

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
