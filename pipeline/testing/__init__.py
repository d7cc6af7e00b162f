"""Test helpers that ship with the package: probe stages and jobs, ready-made stage inputs, tolerances.

Users can check their own cluster (`hsp probe`) and their own stages with them, as our tests do.
"""
