"""The console's sessions, kept server-side beside the views (SQLite or PostgreSQL), so that
signing out ends a session in every process at once, even for a copy of its cookie."""
from __future__ import annotations

import threading
import time

from infrastructure.views_sql import SqlViews

TABLE = """CREATE TABLE IF NOT EXISTS console_sessions (
    session_id TEXT PRIMARY KEY, until BIGINT NOT NULL)"""


class ConsoleSessions:
    """Open sessions by id, each with the moment it expires (epoch seconds)."""

    def __init__(self, views: SqlViews) -> None:
        self.views = views
        self._ready = False
        self._lock = threading.Lock()

    def _table(self) -> None:
        with self._lock:
            for attempt in range(3):  # processes creating it at once: one wins, others see it
                if self._ready:
                    return
                try:
                    with self.views.writing() as cur:
                        cur.execute(TABLE)
                    self._ready = True
                except Exception:
                    if attempt == 2:
                        raise
                    time.sleep(0.05)

    def open(self, session_id: str, until: int) -> None:
        """Records a new session, and forgets the expired ones."""
        self._table()
        sql = self.views._sql  # noqa: SLF001 - the views' own placeholder style
        with self.views.writing() as cur:
            cur.execute(sql("DELETE FROM console_sessions WHERE until < ?"), [int(time.time())])
            cur.execute(sql("INSERT INTO console_sessions (session_id, until) VALUES (?, ?)"),
                        [session_id, until])

    def alive(self, session_id: str) -> bool:
        self._table()
        with self.views.reading() as cur:
            cur.execute(self.views._sql(  # noqa: SLF001
                "SELECT 1 FROM console_sessions WHERE session_id = ? AND until >= ?"),
                [session_id, int(time.time())])
            return cur.fetchone() is not None

    def close(self, session_id: str) -> None:
        self._table()
        with self.views.writing() as cur:
            cur.execute(self.views._sql(  # noqa: SLF001
                "DELETE FROM console_sessions WHERE session_id = ?"), [session_id])
