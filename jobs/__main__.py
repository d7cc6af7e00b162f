"""`python -m jobs JOB.yaml`: run the job named by the YAML's `job:` key."""

import sys

from jobs._entry import job_main

if __name__ == "__main__":
    sys.exit(job_main(None))
