"""open -> acknowledged -> resolved through ``urbanpulse events`` on the real PostgreSQL, analytics alongside."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from psycopg import AsyncConnection
from test_events_support import (
    START,
    STEP,
    air_fleet,
    analyse,
    batches,
    outbox,
    query,
    register,
    settings_for,
    spikes,
    write,
)
from typer.testing import CliRunner, Result

from urbanpulse.analytics.events import Transition
from urbanpulse.analytics.events_cli import events_app
from urbanpulse.analytics.lifecycle import Target, parse_target
from urbanpulse.analytics.store import close_resolved, load_checkpoint, save

pytestmark = pytest.mark.integration

DEVICES = air_fleet()


def cli(database: str, *args: str) -> Result:
    return CliRunner().invoke(events_app, list(args), env={"URBANPULSE_DATABASE__DSN": database, "COLUMNS": "250"})


def event(database: str, event_id: int) -> dict[str, Any]:
    (row,) = query(database, "SELECT * FROM events WHERE id = %s", [event_id])
    return row


def changes_of(database: str, subject: str, subject_id: int) -> list[str | None]:
    return [c for t, c in outbox(database) if t == f"urbanpulse/v1/ops/{subject}/{subject_id}"]


def spiked(database: str, devices: list[str]) -> list[dict[str, Any]]:
    return query(database, "SELECT * FROM events WHERE metric = 'pm25' AND device_id = ANY(%s) ORDER BY id",
                 [devices])


def test_acknowledge_and_resolve_events_and_incidents(database: str) -> None:
    a, b = (d for d in DEVICES if d.district.name == "Hoan Kiem")
    register(database, DEVICES)

    data = batches(DEVICES, 75, spikes([a, b], start=40, length=20))
    settings = settings_for(database)
    asyncio.run(write(database, data[:50]))
    asyncio.run(analyse(settings))
    ea, eb = spiked(database, [a.device_id, b.device_id])
    incident = ea["incident_id"]
    assert eb["incident_id"] == incident

    listed = cli(database, "list")
    assert listed.exit_code == 0, listed.output
    assert all(str(e["id"]) in listed.output for e in (ea, eb))
    header, *lines = listed.output.splitlines()  # piped: tab-separated, nothing cut short, for grep
    assert header.split("\t")[:4] == ["id", "status", "severity", "device"]
    assert {line.split("\t")[3] for line in lines} >= {a.device_id, b.device_id}
    assert f"I{incident}" in listed.output
    assert "Hoan Kiem, Ha Noi" in listed.output
    listed = cli(database, "list", "--incidents")
    assert f"I{incident}" in listed.output
    assert "2 events in Hoan Kiem" in listed.output

    # acknowledge one event
    done = cli(database, "ack", str(ea["id"]), "--by", "alice")
    assert done.exit_code == 0, done.output
    assert f"{ea['id']} acknowledged" in done.output
    row = event(database, ea["id"])
    assert (row["status"], row["acknowledged_by"]) == ("acknowledged", "alice")
    assert row["time_to_acknowledge"] is not None
    assert row["time_to_acknowledge"].total_seconds() >= 0
    assert changes_of(database, "events", ea["id"])[-1] == "acknowledged"
    assert "already acknowledged" in cli(database, "ack", f"E{ea['id']}").output

    # acknowledged events still update
    asyncio.run(write(database, data[50:55]))
    asyncio.run(analyse(settings))
    row = event(database, ea["id"])
    assert (row["status"], row["readings"]) == ("acknowledged", 15)

    # acknowledge the incident: its open member too, not the one alice acknowledged
    done = cli(database, "ack", f"I{incident}", "--by", "bob")
    assert done.exit_code == 0, done.output
    (inc,) = query(database, "SELECT * FROM incidents WHERE id = %s", [incident])
    assert (inc["status"], inc["acknowledged_by"]) == ("acknowledged", "bob")
    assert [event(database, e["id"])["acknowledged_by"] for e in (ea, eb)] == ["alice", "bob"]
    assert changes_of(database, "incidents", incident)[-1] == "acknowledged"

    # resolve one event by hand: the incident stays (alice's event is open); the anomaly goes on, so
    # analytics raises a new event for that series, in the same incident
    done = cli(database, "resolve", str(eb["id"]), "--by", "carol")
    assert done.exit_code == 0, done.output
    row = event(database, eb["id"])
    assert (row["status"], row["resolved_by"]) == ("resolved", "carol")
    assert row["time_to_resolve"] is not None
    assert changes_of(database, "events", eb["id"])[-2:] == ["resolved", None]
    assert query(database, "SELECT status FROM incidents WHERE id = %s", [incident])[0]["status"] == "acknowledged"

    # the spike ends at 60; five minutes of calm later everything resolves by itself
    asyncio.run(write(database, data[55:]))
    assert asyncio.run(analyse(settings)).stats.closed_by_operators == 1  # the rules learnt of carol's resolve
    ea2, _eb2, ec = spiked(database, [a.device_id, b.device_id])
    assert (ea2["status"], ea2["resolved_by"], ea2["resolved_at"]) == ("resolved", None, START + 60 * STEP)
    assert (ec["device_id"], ec["incident_id"], ec["status"]) == (b.device_id, incident, "resolved")
    assert ec["opened_at"] == START + 55 * STEP
    (inc,) = query(database, "SELECT * FROM incidents WHERE id = %s", [incident])
    assert (inc["status"], inc["resolved_by"], inc["members"]) == ("resolved", None, 3)
    assert "already resolved" in cli(database, "resolve", f"I{incident}").output
    assert "already resolved" in cli(database, "ack", f"i{incident}").output


def test_an_event_resolved_by_hand_is_not_reopened_by_its_updates(database: str) -> None:
    """After an operator resolves an event, the rules still holding it open take a reading between
    the thresholds for an update: it must not insert a new (unconfirmed) event, and the next chunk
    closes the event in the rules, so a new one needs a confirmed candidate."""
    a = DEVICES[0]
    register(database, DEVICES)
    data = batches(DEVICES, 50, spikes([a], start=40, length=10))
    settings = settings_for(database)
    asyncio.run(write(database, data))
    asyncio.run(analyse(settings))
    (opened,) = spiked(database, [a.device_id])
    assert opened["status"] == "open"
    assert cli(database, "resolve", str(opened["id"]), "--by", "dave").exit_code == 0

    async def update_then_close() -> tuple[int, bool]:
        async with await AsyncConnection.connect(database, autocommit=True) as conn:
            horizon, state = await load_checkpoint(conn, settings.analytics.checkpoint_name)
            s = state.index[(a.device_id, "pm25")]
            assert state.events.is_open[s]  # the rules do not know yet
            at = START + 50 * STEP
            update = Transition(s, False, 1, at, at, 0.55, 0.55, 80.0)  # a reading between the thresholds
            written = await save(conn, settings.analytics.checkpoint_name, horizon, horizon or 0, state, [update])
            assert (written.opened, written.extended, written.updated) == (0, 0, 0)  # nothing written, none counted
            return await close_resolved(conn, state), bool(state.events.is_open[s])

    assert asyncio.run(update_then_close()) == (1, False)
    assert [e["id"] for e in spiked(database, [a.device_id])] == [opened["id"]]  # no new event


def test_resolving_an_incident_resolves_its_members(database: str) -> None:

    quan_1 = [d for d in DEVICES if d.district.name == "Quan 1"]
    register(database, DEVICES)
    asyncio.run(write(database, batches(DEVICES, 45, spikes(quan_1, start=40))))
    asyncio.run(analyse(settings_for(database)))
    members = spiked(database, [d.device_id for d in quan_1])
    incident = members[0]["incident_id"]

    done = cli(database, "resolve", f"I{incident}", "--by", "dave")
    assert done.exit_code == 0, done.output
    (inc,) = query(database, "SELECT * FROM incidents WHERE id = %s", [incident])
    assert (inc["status"], inc["resolved_by"]) == ("resolved", "dave")
    assert inc["closed_at"] is not None
    assert inc["time_to_resolve"] is not None
    assert {(r["status"], r["resolved_by"]) for r in query(
        database, "SELECT status, resolved_by FROM events WHERE incident_id = %s", [incident])} == {
        ("resolved", "dave")}
    assert changes_of(database, "incidents", incident)[-2:] == ["resolved", None]

    listed = cli(database, "list", "--status", "resolved", "--incidents")
    assert f"I{incident}" in listed.output
    assert "dave" in listed.output
    assert f"I{incident}" not in cli(database, "list", "--incidents").output  # active only by default


def test_unknown_and_malformed_ids(database: str) -> None:
    """An id that names nothing, or is no id, is bad input: one line on stderr, exit 2 (the README's rule; the
    first exited 1 on stdout, the second drew a usage box)."""
    for args in (("ack", "424242"), ("resolve", "I424242"), ("ack", str(2**63 - 1))):
        missing = cli(database, *args)
        assert missing.exit_code == 2, missing.output
        assert missing.stdout == ""
        assert missing.stderr.startswith("error: ")
        assert "no such event or incident" in missing.stderr
        assert len(missing.stderr.strip().splitlines()) == 1
    bad = cli(database, "ack", "X1")
    assert bad.exit_code == 2
    assert bad.stderr.strip() == "error: 'X1' is neither an event id (42, E42) nor an incident id (I7)"


@pytest.mark.parametrize(("text", "target"), [("42", Target(False, 42)), ("E42", Target(False, 42)),
                                              ("e7", Target(False, 7)), ("I7", Target(True, 7)),
                                              (" i12 ", Target(True, 12)),
                                              (str(2**63 - 1), Target(False, 2**63 - 1))])
def test_ids(text: str, target: Target) -> None:
    assert parse_target(text) == target
    assert str(target) in {"42", "7", "I7", "I12", str(2**63 - 1)}


@pytest.mark.parametrize("text", ["", "I", "42x", "I-1", "#3", "1" * 20, str(2**63)])
def test_bad_ids(text: str) -> None:
    with pytest.raises(ValueError, match="neither"):
        parse_target(text)
