"""PostgreSQL LISTEN on a thread of its own: another process's write wakes ours at once,
instead of our readers polling the database."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg
from psycopg import sql

log = logging.getLogger("orchestrator.listen")


class Listener:
    """Calls `on_notify(payload)` for each NOTIFY on `channel`; reconnects after a database
    outage (and calls `on_notify(None)` then, since notifications sent meanwhile were lost)."""

    def __init__(self, url: str, channel: str, on_notify: Callable[[str | None], None]):
        self.url, self.channel, self.on_notify = url, channel, on_notify
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"listen-{channel}", daemon=True)

    def start(self) -> Listener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    failures = 0
                    self.on_notify(None)
                    while not self._stop.is_set():
                        for notify in conn.notifies(timeout=1.0):
                            self.on_notify(notify.payload)
            except psycopg.Error as e:
                failures += 1
                log.warning("LISTEN %s lost (%s); reconnecting", self.channel, type(e).__name__)
                self._stop.wait(min(5.0, 0.2 * 2**failures))
