"""``python -m dltool`` (also what ``torchrun -m dltool`` runs)."""

from dltool.cli import main

main()
