"""The ``edgekv`` command: one module per subcommand, wired up in :mod:`edgekv.cli.main`."""
