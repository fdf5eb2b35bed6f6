"""``python -m hierlin_stan`` runs the ``hierlin`` command line."""

import sys

from .cli import main

sys.exit(main())
