"""``python -m opcard.cli``."""

from opcard.cli import main

main()
