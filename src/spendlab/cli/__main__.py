"""``python -m spendlab.cli``: the console entry point."""

from spendlab.cli import main

main()
