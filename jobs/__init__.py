"""Thin entry points for `ray job submit`: `python -m jobs.<name> job.yaml` runs `hsp <name>` from a YAML file.

One module per job (jobs/prepare.py, ...); all share jobs/_entry.py. `python -m jobs job.yaml`
picks the job from the YAML's `job:` key.
"""
