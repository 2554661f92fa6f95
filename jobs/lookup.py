"""spark-submit entry point: ``spark-submit jobs/lookup.py ...``."""

from nurture_lake.jobs.lookup import main

if __name__ == "__main__":
    main()
