"""IoT sensors: device registry, MQTT ingest into DuckDB, log replay, and per-field evidence.

Modules: `schema` (message format and validation), `registry` (devices), `connection` (broker
URLs, paho clients), `ingest` (QoS 1 subscriber, batch commits, ack after commit), `replay`
(CSV -> MQTT), `broker` (embedded amqtt for the demo; private Mosquitto from deploy/mosquitto),
`evidence` (field evidence and alerts), `demo` (`feed_sample` for the demo flow).
"""
