"""The policy as an MLflow ``pyfunc`` model.

``predict`` takes a pandas DataFrame with ``context`` (list of floats), ``allowed_actions`` (list of
action ids, or null for all) and ``decision_id``, and returns per row ``action_probs`` and
``expected_rewards`` (dicts), the sampled ``action_id``, its ``propensity`` and ``explored`` — the
same numbers the Spark scoring path produces. The fitted policy travels as the JSON artifact
``policy.json``; the serving environment needs ``nurture_lake`` installed.

Example::

    model = mlflow.pyfunc.load_model("models:/nurture_lake_cadence_policy@champion")
    model.predict(pd.DataFrame({"context": [[1.0, 0.2]], "allowed_actions": [["hold"]], "decision_id": ["d1"]}))
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from nurture_lake.policy.scoring import Policy, policy_from_dict, score_pandas

POLICY_ARTIFACT = "policy"
"""Key of the policy JSON in the pyfunc's artifacts."""


def write_policy_json(policy: Policy, path: Path, *, seed: int, context_col: str) -> Path:
    """Write the policy and its scoring settings as JSON (the pyfunc artifact)."""
    path.write_text(json.dumps({"policy": policy.to_dict(), "seed": seed, "context_col": context_col}))
    return path


def read_policy_json(path: str | Path) -> tuple[Policy, int, str]:
    """(policy, sampling seed, context column) from a policy JSON artifact."""
    raw = json.loads(Path(path).read_text())
    return policy_from_dict(raw["policy"]), int(raw["seed"]), str(raw["context_col"])


class PolicyModel(mlflow.pyfunc.PythonModel):
    """``mlflow.pyfunc`` wrapper of a :class:`~nurture_lake.policy.scoring.Policy`."""

    def __init__(self) -> None:
        self.policy: Policy | None = None
        self.seed = 0
        self.context_col = "context"

    def load_context(self, context: Any) -> None:
        self.policy, self.seed, self.context_col = read_policy_json(context.artifacts[POLICY_ARTIFACT])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if self.policy is None:
            raise RuntimeError("the policy artifact was not loaded")
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return score_pandas(self.policy, frame, seed=self.seed, context_col=self.context_col)
