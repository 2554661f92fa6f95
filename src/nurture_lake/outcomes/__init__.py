"""Outcomes: decisions joined with later events inside the reward window → rewards."""

from nurture_lake.outcomes.attribution import attribute, with_windows

__all__ = ["attribute", "with_windows"]
