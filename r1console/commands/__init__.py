"""One module per subcommand; each defines ``register(subparsers)``. See r1console/cli.py."""
