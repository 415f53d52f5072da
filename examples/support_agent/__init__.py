"""The support agent example: see run.py."""
