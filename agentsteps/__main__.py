"""``python -m agentsteps``: the same as the ``agentsteps`` command."""

import sys

from ._main import main

sys.exit(main())
