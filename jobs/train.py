"""spark-submit entry point for ``nurture-lake train`` (the logic lives in nurture_lake.jobs.train)."""

import sys

from nurture_lake.jobs.train import main

if __name__ == "__main__":
    main(sys.argv[1:])
