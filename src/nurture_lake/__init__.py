"""nurture_lake: self-learning lead-nurture agents on Spark and Delta Lake."""

__version__ = "0.1.0"
__all__ = ["__version__"]
