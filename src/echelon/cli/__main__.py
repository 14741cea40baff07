"""``python -m echelon.cli``: the ``echelon`` command."""

import sys

from echelon.cli import main

sys.exit(main())
