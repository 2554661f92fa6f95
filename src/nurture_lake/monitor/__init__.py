"""Observability: streaming metrics, policy health, feature drift, SLOs and the HTML report.

Tables (all in the pseudo-region ``global``): ``ops.stream_metrics``, ``gold.policy_health``,
``gold.feature_drift``. The ``monitor`` job computes health and drift, checks the SLOs, writes
the report under ``<report_root>/monitor`` and exits 3 when an SLO is breached.
"""

from nurture_lake.monitor.drift import FEATURE_DRIFT, baseline_version, feature_drift_table, numeric_columns, psi, write_feature_drift
from nurture_lake.monitor.health import (
    POLICY_HEALTH,
    policy_health,
    policy_health_table,
    read_policy_inputs,
    write_policy_health,
)
from nurture_lake.monitor.listener import (
    STREAM_METRICS,
    MetricsListener,
    install_metrics_listener,
    metrics_listener,
    stream_metrics_table,
)
from nurture_lake.monitor.report import report_dir, write_report
from nurture_lake.monitor.settings import MonitorSettings
from nurture_lake.monitor.slo import SLO_BREACH_EXIT_CODE, SloResult, check_slos

__all__ = [
    "FEATURE_DRIFT",
    "POLICY_HEALTH",
    "SLO_BREACH_EXIT_CODE",
    "STREAM_METRICS",
    "MetricsListener",
    "MonitorSettings",
    "SloResult",
    "baseline_version",
    "check_slos",
    "feature_drift_table",
    "install_metrics_listener",
    "metrics_listener",
    "numeric_columns",
    "policy_health",
    "policy_health_table",
    "psi",
    "read_policy_inputs",
    "report_dir",
    "stream_metrics_table",
    "write_feature_drift",
    "write_policy_health",
    "write_report",
]
