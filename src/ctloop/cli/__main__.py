"""``python -m ctloop.cli``: the same as the ``ctloop`` command."""

from ctloop.cli import main

main()
