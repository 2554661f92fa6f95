"""spark-submit entry point: ``spark-submit jobs/erase.py ...``."""

from nurture_lake.jobs.erase import main

if __name__ == "__main__":
    main()
