"""An embedded MQTT broker (amqtt) for `ecowatch demo` on a machine with no broker installed.

amqtt speaks MQTT 3.1.1 only and carries a few thousand messages a second: plenty for the demo,
not for production or the tests of the real path (those use Mosquitto). It runs on its own
asyncio loop in a background thread and listens on loopback only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from typing import Any


class EmbeddedBroker:
    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="amqtt", daemon=True)
        self._broker: Any = None

    def start(self, timeout: float = 10.0) -> None:
        # amqtt logs every client hiccup at warning level through stdlib logging; the demo's own
        # summary is what the user should read.
        logging.getLogger("amqtt").setLevel(logging.CRITICAL)
        try:
            from amqtt.broker import Broker
        except ImportError as exc:  # pragma: no cover - the demo extra installs it
            raise RuntimeError("the embedded broker needs amqtt: pip install 'ecowatch[demo]'") from exc
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

        async def boot() -> None:
            self._broker = Broker(config)
            await self._broker.start()

        self._thread.start()
        # start() returns once the listener is bound (or raises, e.g. address in use).
        asyncio.run_coroutine_threadsafe(boot(), self._loop).result(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        if self._broker is not None:
            # amqtt may wait on sessions that never close; the loop is stopped below regardless.
            with contextlib.suppress(TimeoutError, concurrent.futures.TimeoutError):
                asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
