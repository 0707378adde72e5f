"""The composition root: where the product is put together.

The daemon's assembly (`daemon`), its settings (`settings`, gathering every component's
configuration section), the `ecowatch` command line (`cli` and the `*_cli` commands), the HTTP
server (`http`, `http_server`), the dashboard and its queries, the demo with its embedded broker.
This is the only package that imports both the pipeline (the rest of `ingest`) and `alerts` or
`simulators`; nothing outside it imports it (ARCHITECTURE.md, checked by import-linter).
"""
