"""``python -m cokernel``: run the ``cokernel`` command (see :mod:`cokernel.cli`)."""

from cokernel.cli import main

raise SystemExit(main())
