"""Runnable examples, one per directory (``examples/<name>/run.py`` + ``providers.toml``).

A package so that tests (and ``python -m examples.<name>.run``) can import them.
"""
