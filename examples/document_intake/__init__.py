"""The document intake example: see run.py."""
