"""``python -m qdq``: the qdq command line."""

import sys

from .cli import main

sys.exit(main())
