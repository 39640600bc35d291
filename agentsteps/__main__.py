"""``python -m agentsteps``: the same as the ``agentsteps`` command."""

import sys

from ._report.cli import main

sys.exit(main())
