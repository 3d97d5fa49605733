"""`python -m vecstore.cli`."""

from .main import main

raise SystemExit(main())
