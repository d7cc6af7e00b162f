"""`python -m jobs.upsample JOB.yaml`: the `hsp upsample` command driven by a job YAML (see jobs/examples/upsample.yaml)."""

import sys

from jobs._entry import job_main

if __name__ == "__main__":
    sys.exit(job_main("upsample"))
