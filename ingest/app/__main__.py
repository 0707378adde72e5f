"""`python -m ingest.app`: the `ecowatch` command."""

import sys

from ingest.app.cli import main

sys.exit(main())
