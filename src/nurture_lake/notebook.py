"""What every notebook's first cell needs: configuration, Spark and the lake, from the environment.

Set in the cluster's or shell's environment (or pass explicitly):

* ``NURTURE_LAKE_ENV`` — ``conf/<env>.yaml`` name (``local``, ``databricks``) or a path to a YAML file;
* ``NURTURE_LAKE_LAKE_ROOT`` — overrides ``storage.lake_root`` (e.g. a copy of the demo lake);
* ``NURTURE_LAKE_REGION`` — the region the notebook looks at.

Example (first cell)::

    from nurture_lake.notebook import notebook_context
    cfg, spark, lake, REGION = notebook_context()
"""

from __future__ import annotations

import os
from typing import NamedTuple

from pyspark.sql import SparkSession

from nurture_lake.config import NurtureConfig, load_config
from nurture_lake.spark import get_spark
from nurture_lake.tables import Lake


class NotebookContext(NamedTuple):
    """Unpacks as ``cfg, spark, lake, region``."""

    cfg: NurtureConfig
    spark: SparkSession
    lake: Lake
    region: str


def notebook_context(*, app_name: str = "nurture_lake.notebook") -> NotebookContext:
    """Load the configuration named by the environment, get Spark (the active one on Databricks), the lake."""
    lake_root = os.environ.get("NURTURE_LAKE_LAKE_ROOT")
    cfg = load_config(os.environ.get("NURTURE_LAKE_ENV", "local"),
                      overrides={"storage.lake_root": lake_root} if lake_root else {})
    return NotebookContext(cfg, get_spark(cfg, app_name=app_name), Lake(cfg), os.environ.get("NURTURE_LAKE_REGION", "us"))


def show(obj: object, n: int = 20) -> None:
    """Outside Databricks, ``display``'s stand-in: print the first rows of a DataFrame (or the object)."""
    to_pandas = getattr(obj, "toPandas", None)
    print(obj.limit(n).toPandas().to_string() if to_pandas is not None else obj)  # type: ignore[attr-defined]
