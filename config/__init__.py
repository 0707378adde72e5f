"""Shared configuration: the YAML + environment loader, common field types, the station registry,
the parameter catalogue and the reference data files (GB 3838-2002, HJ 212-2017 codes).

Imports neither `ingest` nor `alerts`: they depend on it, not the other way round.
"""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
