"""`python -m pipeline.cli`: the `hsp` command line without the console script."""

from pipeline.cli import main

main()
