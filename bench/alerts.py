"""Alert noise on a simulated city with known incidents: analytics against naive threshold alerting.

    python bench/alerts.py [--scenario firmware-sim/scenarios/city-day.toml] [--seeds 42 7 2024]

For each seed the scenario is played (``urbanpulse.sim.engine``: its incidents, faults and ground
truth), the messages are parsed by the gateway's parser and committed batch by batch, step by step,
into a throwaway PostgreSQL (``urbanpulse.localstack.PostgresServer``) with ingest's writer, and the
analytics service steps after every batch: detector -> events -> incidents, the code
``urbanpulse analytics`` runs. Its items (incidents; a one-member incident is an ungrouped event)
and naive alerting (one alert per reading beyond a fixed line, ``alert_eval.NAIVE_LINES``) on the
same stored readings are scored against the ground truth by ``urbanpulse.analytics.alert_eval``
(matching rules in its docstring). Prints each seed and the pooled figures.

Targets (issue 7): recall >= 0.95, <= 1.2 items per true incident, <= 0.01 false items per device-day.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from urbanpulse.analytics.alert_eval import NAIVE_LINES, TOLERANCE, Figures, TruthWindow, evaluate, naive_items
from urbanpulse.analytics.alert_replay import ProvinceDay, device_days, replay
from urbanpulse.ingest.migrate import migrate
from urbanpulse.localstack import PostgresServer
from urbanpulse.settings import AnalyticsSettings, DatabaseSettings, Settings
from urbanpulse.sim.engine import play
from urbanpulse.sim.scenario import Scenario, load

SCENARIO = Path(__file__).parent.parent / "firmware-sim" / "scenarios" / "city-day.toml"


def fresh_database(server: PostgresServer, name: str) -> str:
    dsn = server.create_database(name)
    migrate(dsn)
    return dsn


def run_seed(server: PostgresServer, scenario: Scenario, tolerance: timedelta
             ) -> tuple[Figures, Figures, float, list[ProvinceDay]]:
    played = play(scenario)
    truth = [TruthWindow.from_json(t.to_json()) for t in played.truth]
    dsn = fresh_database(server, f"alerts_{scenario.seed}")
    settings = Settings(database=DatabaseSettings(dsn=dsn), analytics=AnalyticsSettings(publish=False))
    started = time.perf_counter()
    replayed = asyncio.run(replay(settings, scenario, played))
    elapsed = time.perf_counter() - started
    days = device_days(scenario, played)
    ours = evaluate(replayed.items, truth, days, tolerance)
    naive = evaluate(naive_items(replayed.readings), truth, days, tolerance)
    return ours, naive, elapsed, replayed.provinces


def slow_line(provinces: list[ProvinceDay]) -> str:
    """Each province's tests' median over the run and the slow-province incidents raised for it."""
    def one(p: ProvinceDay) -> str:
        raised = ", ".join(f"{severity} ({status} at the end)" for status, severity in p.incidents) or "none"
        return f"{p.province} {p.median_mbps:.1f} Mbit/s over {p.tests} tests: {raised}"
    head = "slow provinces (4G median under 40 Mbit/s; incidents apart from the items): "
    return head + "; ".join(map(one, provinces))


def _delay(f: Figures) -> str:
    d = f.median_delay
    return "-" if d is None else f"{d.total_seconds() / 60:.0f} min"


def row(name: str, f: Figures) -> str:
    return (f"{name:<24} {f.recall:>6.2f} {f.detected:>3}/{f.incidents:<3} {f.items:>7} {f.items_per_incident:>9.2f}"
            f" {f.false_items:>6} {f.false_per_device_day:>9.3f} {f.fault_items:>6} {_delay(f):>9}")


HEADER = (f"{'':<24} {'recall':>6} {'found':>7} {'items':>7} {'per inc.':>9} {'false':>6} {'false/d-d':>9}"
          f" {'fault':>6} {'ttd p50':>9}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", type=Path, default=SCENARIO)
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds to play (default: the scenario's, 7 and 2024)")
    parser.add_argument("--tolerance-minutes", type=float, default=TOLERANCE.total_seconds() / 60)
    args = parser.parse_args()
    base = load(args.scenario)
    seeds = args.seeds or [base.seed, 7, 2024]
    tolerance = timedelta(minutes=args.tolerance_minutes)
    print(f"scenario {base.name}: {base.fleet.air + base.fleet.traffic + base.fleet.ispeed} devices, "
          f"{base.duration}, step {base.step}, {len(base.incidents)} incidents, {len(base.faults)} faults; "
          f"tolerance {tolerance}")
    print("naive lines: " + ", ".join(f"{x.metric} {'>' if x.above else '<'} {x.value:g} ({x.why})"
                                       for x in NAIVE_LINES))
    total_ours: Figures | None = None
    total_naive: Figures | None = None
    with tempfile.TemporaryDirectory() as tmp, PostgresServer(Path(tmp) / "pg") as server:
        for seed in seeds:
            ours, naive, elapsed, provinces = run_seed(server, base.model_copy(update={"seed": seed}), tolerance)
            print(f"\nseed {seed} ({elapsed:.1f} s through the real stack)\n{HEADER}")
            print(row("analytics (incidents)", ours))
            print(row("naive per-reading lines", naive))
            print(slow_line(provinces))
            total_ours = ours if total_ours is None else total_ours + ours
            total_naive = naive if total_naive is None else total_naive + naive
    assert total_ours is not None
    assert total_naive is not None
    print(f"\nall {len(seeds)} seeds ({total_ours.device_days:g} device-days)\n{HEADER}")
    print(row("analytics (incidents)", total_ours))
    print(row("naive per-reading lines", total_naive))
    print("targets: recall >= 0.95, <= 1.2 items per incident, <= 0.010 false items per device-day")


if __name__ == "__main__":
    main()
