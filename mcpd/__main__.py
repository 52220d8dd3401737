"""``python -m mcpd``: the same as the ``mcpd`` console script."""

from mcpd.cli import main

raise SystemExit(main())
