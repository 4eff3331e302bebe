"""Subcommands of the ``pmzfs`` command line.

Each module defines ``add_parser(subparsers)``, which registers its
subcommand and sets ``func`` to a callable taking the parsed arguments and
returning the exit code.
"""
