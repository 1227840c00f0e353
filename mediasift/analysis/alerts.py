"""Outgoing alerts: each rule flag an object version trips is POSTed to `MEDIASIFT_ALERT_WEBHOOK_URL`, once.

Once per object version: a redelivered notification is absorbed by the inbox before any run, and the flag
id (a hash of the rule and the version) is claimed in a ledger table beside the inbox's, in the same
database, before the POST, and marked sent after it. A retried or re-materialised run finds it claimed or
sent and stays quiet. A worker that dies between the POST and the mark leaves a claim that expires; the
alert then goes again under the same `Idempotency-Key`, so a receiver that keys on it sees it once.

Transient answers (connection errors, timeouts, 429 and 5xx) are retried with capped exponential backoff
and full jitter; any other 4xx is final (resending the same request cannot fix it). An alert that fails
is recorded with its error and may be claimed again by a later run.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from mediasift.config import Settings, secret
from mediasift.identity import ObjectVersion

log = logging.getLogger(__name__)

SCHEMA_LOCK_ID = 0x6D73_616C
"""Postgres advisory lock held while the ledger table is created (another id than the inbox's)."""
CLAIM_SECONDS = 300.0
"""How long a claim holds before a run may take over an alert whose sender died mid-POST."""

metadata = MetaData()
alerts_table = Table(
    "alerts", metadata,
    Column("id", String, primary_key=True),
    Column("version_hash", String, nullable=False),
    Column("rule", String, nullable=False),
    Column("state", String, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("claimed_until", Float, nullable=False),
    Column("sent_at", Float),
    Column("status_code", Integer),
    Column("last_error", Text),
)


class AlertLedger:
    """Which alerts were claimed, sent or failed, in the inbox's database (shared by every run process)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._insert = sqlite.insert if self.is_sqlite else postgresql.insert
        with engine.begin() as conn:
            if self.is_sqlite:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK_ID)))
            metadata.create_all(conn)

    def claim(self, flag_id: str, version_hash: str, rule: str, now: float | None = None) -> bool:
        """True when this caller is to send the alert: it is new, it failed before, or its claim expired."""
        now = time.time() if now is None else now
        c = alerts_table.c
        with self.engine.begin() as conn:
            inserted = conn.execute(self._insert(alerts_table).values(
                id=flag_id, version_hash=version_hash, rule=rule, state="sending", attempts=0,
                claimed_until=now + CLAIM_SECONDS).on_conflict_do_nothing(index_elements=["id"]).returning(c.id))
            if inserted.scalar_one_or_none() is not None:
                return True
            taken = conn.execute(update(alerts_table).where(c.id == flag_id).where(or_(
                c.state == "failed", (c.state == "sending") & (c.claimed_until < now)))
                .values(state="sending", claimed_until=now + CLAIM_SECONDS).returning(c.id))
            return taken.scalar_one_or_none() is not None

    def finish(self, flag_id: str, outcome: Outcome) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(alerts_table).where(alerts_table.c.id == flag_id).values(
                state="sent" if outcome.sent else "failed", attempts=alerts_table.c.attempts + outcome.attempts,
                sent_at=time.time() if outcome.sent else None, status_code=outcome.status_code,
                last_error=outcome.error))

    def rows(self) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(alerts_table).order_by(alerts_table.c.id))]


@dataclass(frozen=True)
class Outcome:
    sent: bool
    attempts: int
    status_code: int | None = None
    error: str | None = None


class AlertSender:
    def __init__(self, url: str, ledger: AlertLedger, token: str | None = None, *, max_attempts: int = 5,
                 base_delay: float = 0.5, max_delay: float = 8.0, timeout: float = 10.0,
                 sleep: Callable[[float], None] = time.sleep):
        """httpx is imported here, not by every run process that imports the asset without sending alerts."""
        import httpx

        self.url, self.ledger, self.max_attempts = url, ledger, max_attempts
        self.base_delay, self.max_delay, self.sleep = base_delay, max_delay, sleep
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(timeout=timeout, headers=headers)

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine) -> AlertSender | None:
        """None when no alert webhook is configured: flags are then only recorded, not sent."""
        if not settings.alert_webhook_url:
            return None
        return cls(settings.alert_webhook_url, AlertLedger(engine), secret(settings.alert_webhook_token))

    def close(self) -> None:
        self._client.close()

    def send(self, version: ObjectVersion, flags: Sequence[dict]) -> list[Outcome]:
        """POST each flag this caller claims (a flag already sent or being sent elsewhere is skipped)."""
        outcomes = []
        for flag in flags:
            if not self.ledger.claim(flag["id"], version.version_hash, flag["rule"]):
                log.info("alert_skipped id=%s rule=%s uri=%s: already claimed or sent", flag["id"], flag["rule"],
                         version.uri)
                continue
            outcome = self._post(alert_body(version, flag), flag["id"])
            self.ledger.finish(flag["id"], outcome)
            log.log(logging.INFO if outcome.sent else logging.WARNING,
                    "alert_%s id=%s rule=%s uri=%s attempts=%d status=%s error=%s",
                    "sent" if outcome.sent else "failed", flag["id"], flag["rule"], version.uri, outcome.attempts,
                    outcome.status_code, outcome.error)
            outcomes.append(outcome)
        return outcomes

    def _post(self, body: dict, flag_id: str) -> Outcome:
        import httpx

        content = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": flag_id}
        status, error = None, None
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self._client.post(self.url, content=content, headers=headers)
                status = response.status_code
                if response.is_success:
                    return Outcome(True, attempt, status)
                error = f"HTTP {status}"
                if status != 429 and status < 500:
                    return Outcome(False, attempt, status, error)
            except httpx.TransportError as e:
                status, error = None, f"{type(e).__name__}: {e}"
            if attempt < self.max_attempts:
                self.sleep(random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1))))
        return Outcome(False, self.max_attempts, status, error)


def alert_body(version: ObjectVersion, flag: dict) -> dict:
    """What the alert says: the flag, and the exact object version it is about."""
    return {"id": flag["id"], "rule": flag["rule"], "reason": flag["reason"], "at": flag["at"],
            "object": {**version.lineage(), "uri": version.uri}}
