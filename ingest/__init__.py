"""ecowatch ingestion daemon: MQTT source, decoders, validation, write-ahead log, sinks."""
