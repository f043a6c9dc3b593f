"""``python -m transfer_influence.cli``: the same command line as the ``transfer-influence`` script."""

import sys

from . import main

sys.exit(main())
