"""Fuzzing the ingest path in process: hostile payloads through the daemon's own processing code.

Each payload runs through what the daemon runs for one MQTT message (`harness`): routing by topic,
decoding, validation, the readings record and its line protocol (`ingest.processor.process_batch`
on a `MessageProcessor` built by `ingest.app.daemon.build_processor_core` from default settings and
the demo registry), then the record is decoded back and its readings written to the SQLite sink
and the rejections to the dead-letter store, in a temp dir. Invariants per message: nothing
escapes and nothing is contained as `internal_error`; every message yields readings and/or
rejections with a reason; every reading is finite, in int64 ns, within the validation window,
renders as line protocol and reads back from its record and from SQLite; the dead-letter rows of
one message are bounded. Over a run, memory stays bounded.

Payloads come from three places, per format (JSON schema v1, SenML, HJ 212):
- `generators`: seeded plain-loop generators of structurally valid-ish messages with hostile
  values (`hostile` holds the atoms), the bulk of every run;
- `mutators`: byte-level mutations of valid payloads (HJ 212 reframed with a fresh length and
  CRC, so mutations reach the parser behind the CRC check);
- `strategies`: hypothesis strategies over the same atoms, for the structured part (shrinking).

    .venv/bin/pytest -p no:cacheprovider tests/fuzz          # 10^4 payloads per format (default)
    scripts/test.sh -m fuzz tests/fuzz                       # 10^6 per format, with progress

`ECOWATCH_FUZZ_PAYLOADS` overrides the long run's count, `ECOWATCH_FUZZ_SEED` the seed.
"""
