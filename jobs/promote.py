"""spark-submit entry point for ``nurture-lake promote`` (the logic lives in nurture_lake.jobs.promote)."""

import sys

from nurture_lake.jobs.promote import main

if __name__ == "__main__":
    main(sys.argv[1:])
