"""`python -m jobs.score JOB.yaml`: the `hsp score` command driven by a job YAML (see jobs/examples/score.yaml)."""

import sys

from jobs._entry import job_main

if __name__ == "__main__":
    sys.exit(job_main("score"))
