"""`python -m jobs.extract JOB.yaml`: the `hsp extract` command driven by a job YAML (see jobs/examples/extract.yaml)."""

import sys

from jobs._entry import job_main

if __name__ == "__main__":
    sys.exit(job_main("extract"))
