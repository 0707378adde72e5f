"""Sensor simulator: realistic stations, scenarios, faults and load for the demo, tests and benchmarks.

    signals    what a healthy station's instruments read at an instant (pure in seed, station, time)
    scenario   scenario files: pollution, storms, sensor faults, silence, clock skew, bad payloads
    effects    a scenario laid over a run, per station and instant
    formats    a report to (topic, payload): json (default), senml, hj212
    simulator  Simulator: the message stream of a period (iter_messages, run_backfill, run_realtime)
    publish    MqttPublisher (bounded unacked window), FilePublisher and read_replay
    runner     real time, accelerated and backfill runs; RunSummary
    load       synthetic registries, rate-paced load, pregenerated messages for benchmarks
    cli        `ecowatch simulate`: add_parser(subparsers) and run(args)

The simulator depends on `config` and on the encoders in `ingest.decoders`, never on the daemon.
"""
