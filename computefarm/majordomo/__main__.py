"""``python -m computefarm.majordomo``: the same as the ``majordomo`` command."""

import sys

from .command import main

sys.exit(main())
