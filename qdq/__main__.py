"""``python -m qdq``: the qdq command line."""

import sys

from .cli.main import main

sys.exit(main())
