"""The ingest horizon: every ingest batch whose transaction id is below it has committed (or never will).

Consumers of committed batches (the analytics service, the rollups' refresh) read the batches with
``last_horizon <= xid < horizon`` and move on. Every ingest transaction holds the shared advisory lock
:data:`INGEST_LOCK` of its database from before it had a transaction id until it ends (migration 020's
trigger on ``ingest_batches`` takes it, and refuses a batch in a transaction that already has an id
without it -- also one whose savepoint that took it was rolled back). So the horizon is the oldest
transaction of the consumer's snapshot still running that may be an ingest one -- only an ingest
transaction that started early and commits late holds it back, and its batch is read late, never skipped
-- not the server's oldest running transaction, which any TimescaleDB job, report or other application's
write would hold back for as long as it ran.

Not for ingest: two-phase commit (a prepared ingest transaction always holds the horizon back, which is
safe), and ``session_replication_role = replica`` in a writer's session (the trigger does not fire there
and nothing here can tell).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

__all__ = ["HORIZON_SQL", "INGEST_LOCK", "LOCK_IN_FORCE_SQL", "horizon_of", "ingest_horizon"]

INGEST_LOCK = (1970496112, 1)
"""The shared advisory lock (two int4 keys: 'urbp', 1) every ingest transaction holds (migration 020)."""
XID_MODULUS = 2**32  # pg_locks shows 32-bit transaction ids; snapshots, 64-bit ones (xid8)


def ingest_horizon(xmax: int, running: Sequence[int], not_ingest: Collection[int]) -> int:
    """The oldest of a snapshot's ``running`` transaction ids (xid8) that may be an ingest transaction, or
    its ``xmax`` when there is none.

    ``not_ingest``: the 32-bit ids of the transactions that, read from ``pg_locks`` after the snapshot,
    were still running without the ingest lock. Those never write a batch. A running id not among them
    may be an ingest transaction, or one that ended after the snapshot: either way its batch may commit
    after the snapshot, so the horizon stays at it.

    >>> ingest_horizon(120, [100, 105, 110], not_ingest={100, 110})
    105
    >>> ingest_horizon(2**32 + 120, [2**32 + 100], not_ingest={100})  # 32-bit ids wrap around
    4294967416
    """
    return min((x for x in running if x % XID_MODULUS not in not_ingest), default=xmax)


_TRIGGER_ENABLED = ("EXISTS (SELECT FROM pg_trigger WHERE tgname = 'ingest_batches_mark' AND tgenabled IN ('O', 'A')"
                    " AND tgrelid = to_regclass('ingest_batches'))")
LOCK_IN_FORCE_SQL = f"SELECT {_TRIGGER_ENABLED}"
"""Whether migration 020's trigger is there and enabled: without it the horizon falls back to the oldest
running transaction of all (:func:`horizon_of`)."""

# A repeatable-read transaction's snapshot is taken as its first statement starts, so run this first:
# pg_locks is then read after the snapshot, and once (MATERIALIZED: two reads would be two moments, and
# an ingest transaction that ended between them would look like a running one without the lock).
HORIZON_SQL = f"""
WITH locks AS MATERIALIZED (
    SELECT locktype, mode, database, classid, objid, objsubid, transactionid, virtualtransaction
    FROM pg_locks WHERE granted
), ingest AS (
    SELECT virtualtransaction FROM locks
    WHERE locktype = 'advisory' AND classid = {INGEST_LOCK[0]} AND objid = {INGEST_LOCK[1]} AND objsubid = 2
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
)
SELECT pg_snapshot_xmax(s)::text::bigint,
       ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(s) AS x),
       ARRAY(SELECT transactionid::text::bigint FROM locks
             WHERE locktype = 'transactionid' AND mode = 'ExclusiveLock' AND virtualtransaction NOT LIKE '-1/%'
               AND virtualtransaction NOT IN (SELECT virtualtransaction FROM ingest)),
       {_TRIGGER_ENABLED},
       pg_snapshot_xmin(s)::text::bigint
FROM pg_current_snapshot() AS s
"""
"""One row: the snapshot's ``xmax``; its running ids; the ids running without the ingest lock (an owner
holds its own transaction id's lock in ``ExclusiveLock`` mode, a waiter asks for ``ShareLock``; a
prepared transaction, ``-1/...``, moves its locks over one partition at a time, so it never counts as
one without the lock); whether migration 020's trigger is there and enabled; the snapshot's ``xmin``."""


def horizon_of(row: Sequence[Any]) -> int:
    """The horizon from :data:`HORIZON_SQL`'s row.

    Without the trigger (a database not migrated to 020 yet, or the trigger disabled, as
    ``pg_restore --disable-triggers`` does) an ingest transaction need not hold the lock, so the horizon
    is then the oldest running transaction of all (the snapshot's ``xmin``): later events, never a
    skipped batch. The analytics consumer keeps the larger of the horizon and its last one (a
    transaction read past last time may have ended since, and then counts as "may be ingest"); the
    rollups' refresh may step back a little and look at a few batches twice, which is harmless."""
    xmax, running, not_ingest, marked, xmin = row
    if not marked:
        return int(xmin)
    return ingest_horizon(int(xmax), [int(x) for x in running], {int(x) for x in not_ingest})
