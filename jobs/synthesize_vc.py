"""`python -m jobs.synthesize_vc JOB.yaml`: the `hsp synthesize vc` command driven by a job YAML (see jobs/examples/synthesize_vc.yaml)."""

import sys

from jobs._entry import job_main

if __name__ == "__main__":
    sys.exit(job_main("synthesize_vc"))
