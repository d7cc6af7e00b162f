"""`hsp report`: the visual dataset card of a job output (see docs/report.md)."""
