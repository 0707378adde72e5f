"""The two ways data enters: MQTT (`mqtt`, a broker's QoS 1 subscription) and HJ 212 data loggers
over TCP (`hj212_gateway`). Both append to the raw write-ahead log and acknowledge only after it
is durable."""
