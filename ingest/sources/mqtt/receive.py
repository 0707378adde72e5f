"""The receive loop's one round: wait for data, handle every buffered packet, write, keepalive.

We drive paho ourselves rather than through `loop_forever`, because the receive path is the
daemon's ceiling (ARCHITECTURE.md, facts): paho runs one select per packet; here select runs only when the
`BufferedSocket` (ingest.mqtt.paho_internals) has nothing buffered, and up to
`_PACKETS_PER_ROUND` packets are read between writes and keepalive work. Nothing in this module
runs per message: paho's `on_message` callback is the source's.
"""

from __future__ import annotations

import select
from typing import Final

from paho.mqtt.enums import MQTTErrorCode

from ingest.mqtt.paho_internals import BufferedClient

# Packets handled per round before writing and keepalive get their turn.
_PACKETS_PER_ROUND: Final = 2000


def pump(client: BufferedClient, timeout: float) -> MQTTErrorCode:
    """One round of network work; the result of paho's last call (success to go on).

    Raises OSError or ValueError when select fails on the socket: paho did not see that loss.
    """
    sock = client.buffered
    if sock is None or client.socket() is None:
        return MQTTErrorCode.MQTT_ERR_NO_CONN
    if not sock.pending():
        writing = [sock] if client.want_write() or sock.wants_write() else []
        readable, writable, _ = select.select([sock], writing, [], timeout)
        if writable:
            sock.flush()
    else:
        readable = [sock]
    if readable:
        for _ in range(_PACKETS_PER_ROUND):
            rc = client.loop_read()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return rc
            if not sock.pending():
                break
    if client.want_write():
        rc = client.loop_write()
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return rc
    return client.loop_misc()
