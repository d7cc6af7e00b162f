"""`python -m jobs.synthesize_tts JOB.yaml`: the `hsp synthesize tts` command driven by a job YAML (see jobs/examples/synthesize_tts.yaml)."""

import sys

from jobs._entry import job_main

if __name__ == "__main__":
    sys.exit(job_main("synthesize_tts"))
