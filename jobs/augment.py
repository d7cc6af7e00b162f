"""`python -m jobs.augment JOB.yaml`: the `hsp augment` command driven by a job YAML (see jobs/examples/augment.yaml)."""

import sys

from jobs._entry import job_main

if __name__ == "__main__":
    sys.exit(job_main("augment"))
