"""Helpers for tests of code built on `hierspeech`: tiny random-weight configs and models."""
