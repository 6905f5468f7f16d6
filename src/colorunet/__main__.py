"""``python -m colorunet``: the same as the ``colorunet`` command."""

from .apps.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
