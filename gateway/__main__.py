"""``python -m gateway`` is the ``vlmgw`` command."""

import sys

from gateway.cli import main

sys.exit(main())
