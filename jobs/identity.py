"""spark-submit entry point: ``spark-submit jobs/identity.py [--region R ...]``."""

from nurture_lake.jobs.identity import main

if __name__ == "__main__":
    main()
