"""The ``router`` subcommands, one module each; `router.cli` is the entry point."""
