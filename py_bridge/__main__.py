"""``python -m py_bridge`` is the same as the ``bridge`` command."""

from py_bridge.cli import main

main()
