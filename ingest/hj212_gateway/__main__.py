"""`python -m ingest.hj212_gateway`: `ecowatch hj212-gateway` without the rest of the CLI."""

import sys

from ingest.hj212_gateway.cli import main

sys.exit(main())
