"""spark-submit entry point: ``spark-submit jobs/retain.py ...``."""

from nurture_lake.jobs.retain import main

if __name__ == "__main__":
    main()
