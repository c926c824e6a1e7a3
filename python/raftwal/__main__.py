"""``python -m raftwal``: the ``raftwal`` command."""

from .cli.main import main

raise SystemExit(main())
