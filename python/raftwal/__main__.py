"""``python -m raftwal``: the ``raftwal`` command."""

from .cli import main

raise SystemExit(main())
