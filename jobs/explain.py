"""spark-submit entry point: ``spark-submit jobs/explain.py ...``."""

from nurture_lake.jobs.explain import main

if __name__ == "__main__":
    main()
