"""nurture_lake — self-learning lead-nurture agents on Spark and Delta Lake."""

from setuptools import find_packages, setup

# Pins that are known to work together (see README "Versions"). Delta 4.4.0 publishes a JVM artifact per
# Spark line (4.0, 4.1, 4.2); make setup and get_spark() take the installed pyspark's (nurture_lake/jvm.py).
# Spark itself is an extra: on Databricks (or any cluster with its own Spark) the runtime provides it,
# and installing the wheel must not replace it. `make setup` installs `.[local,dev]`.
LOCAL_SPARK = [
    "pyspark==4.0.5",
    "delta-spark==4.4.0",
]
INSTALL_REQUIRES = [
    "pandas>=2.2,<3",          # pandas 3 breaks pyspark.testing on every Spark 4.x line
    "numpy>=1.26,<3",
    "pyarrow>=15",
    "pydantic>=2.7,<3",
    "PyYAML>=6",
    "phonenumbers>=8.13",
    "mlflow==3.17.2",
    "hyperopt==0.3.0",
    "databricks-sdk==0.156.0",
    "matplotlib>=3.8",
    "scipy>=1.11",
    "deltalake>=1.0",           # BI-side reads of gold tables without Spark
    "threadpoolctl>=3",         # one BLAS thread per Spark task in OPE (nested threads were ~5x slower)
]

EXTRAS = {
    "local": LOCAL_SPARK,
    "dev": ["pytest>=8", "pytest-xdist>=3.6", "hypothesis>=6.100", "pytest-timeout>=2.3"],
    "bench": ["vowpalwabbit>=9"],
}

setup(
    name="nurture_lake",
    version="0.1.0",
    description="Self-learning lead-nurture agents: contextual bandits on Spark, Delta Lake decisions",
    package_dir={"": "src"},
    packages=find_packages("src"),
    package_data={"nurture_lake": ["py.typed"]},
    # The environment configs travel with the wheel: <prefix>/share/nurture_lake/conf/<env>.yaml.
    data_files=[("share/nurture_lake/conf", ["conf/local.yaml", "conf/databricks.yaml"])],
    python_requires=">=3.11,<3.12",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["nurture-lake=nurture_lake.cli:main"]},
)
