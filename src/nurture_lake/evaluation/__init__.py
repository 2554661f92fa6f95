"""Off-policy evaluation: IPS, SNIPS, clipped IPS, DM, DR, SNDR and Switch-DR as Spark aggregations,
with Poisson-bootstrap confidence intervals, effective sample sizes and support diagnostics.

Example::

    from nurture_lake.evaluation import off_policy_estimates

    result = off_policy_estimates(logged, n_bootstrap=1000, seed=7, key_col="decision_id")
    result.estimates["dr"]            # Estimate(value=..., ci_low=..., ci_high=..., ess=...)
    result.diagnostics.ess, result.diagnostics.unsupported_mass
    result.to_pandas()
"""

from nurture_lake.evaluation.bootstrap import PoissonCounts
from nurture_lake.evaluation.diagnostics import Diagnostics
from nurture_lake.evaluation.estimators import ESTIMATORS, WEIGHT_ONLY
from nurture_lake.evaluation.ope import off_policy_estimates
from nurture_lake.evaluation.result import Estimate, OpeResult
from nurture_lake.evaluation.settings import OpeSettings

__all__ = [
    "ESTIMATORS",
    "WEIGHT_ONLY",
    "Diagnostics",
    "Estimate",
    "OpeResult",
    "OpeSettings",
    "PoissonCounts",
    "off_policy_estimates",
]
