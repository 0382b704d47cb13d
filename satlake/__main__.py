"""``python -m satlake`` runs the ``satlake`` command."""

import sys

from satlake.cli import main

sys.exit(main())
