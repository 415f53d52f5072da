"""The research agent example: see run.py."""
