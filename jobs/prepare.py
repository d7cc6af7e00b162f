"""`python -m jobs.prepare JOB.yaml`: the `hsp prepare` command driven by a job YAML (see jobs/examples/prepare.yaml)."""

import sys

from jobs._entry import job_main

if __name__ == "__main__":
    sys.exit(job_main("prepare"))
