"""`python -m jobs.probe JOB.yaml`: the `hsp probe` command driven by a job YAML (see jobs/examples/probe.yaml)."""

import sys

from jobs._entry import job_main

if __name__ == "__main__":
    sys.exit(job_main("probe"))
