"""``python -m kmed``: the same as the ``kmed`` console script."""

from kmed.cli import main

raise SystemExit(main())
