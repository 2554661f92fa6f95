"""spark-submit entry point: ``spark-submit jobs/check_guardrails.py [--region R]``."""

import sys

from nurture_lake.jobs.check_guardrails import main

if __name__ == "__main__":
    main(sys.argv[1:])
