"""``python -m producer`` runs the ``taxview`` command."""

import sys

from producer.cli import main

sys.exit(main())
