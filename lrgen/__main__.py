"""``python -m lrgen`` (also what ``torchrun -m lrgen`` runs)."""

from lrgen.cli import main

main()
