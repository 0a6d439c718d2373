"""Severity rules and metric families (pure)."""

from __future__ import annotations

import pytest

from urbanpulse.analytics.severity import FAMILIES, FAMILY, Severity, aqi_category, family, severity
from urbanpulse.analytics.state import METRIC_KIND, NOT_SCORED

INFO, WARNING, CRITICAL = Severity.INFO, Severity.WARNING, Severity.CRITICAL


@pytest.mark.parametrize(
    ("metric", "value", "category", "expected"),
    [
        ("pm25", 20.0, "good", INFO),
        ("pm25", 45.0, "moderate", INFO),  # an anomaly, but the air is still moderate
        ("pm25", 60.0, "poor", WARNING),
        ("pm25", 120.0, "bad", WARNING),
        ("pm25", 200.0, "very_bad", CRITICAL),
        ("pm25", 800.0, "hazardous", CRITICAL),  # above the last breakpoint
        ("pm10", 140.0, "moderate", INFO),
        ("pm10", 300.0, "bad", WARNING),
        ("o3", 250.0, "poor", WARNING),  # the 1-hour row
        ("no2", 1500.0, "very_bad", CRITICAL),
        ("so2", 50.0, "good", INFO),
        ("co", 50000.0, "bad", WARNING),
    ],
)
def test_air_pollutants_follow_the_vn_aqi_category(metric: str, value: float, category: str,
                                                   expected: Severity) -> None:
    assert aqi_category(metric, value) == category
    assert severity(metric, value, 0.85) is expected


def test_category_edges_are_those_of_the_rounded_index() -> None:
    assert aqi_category("pm25", 25.0) == "good"  # AQI 50
    assert aqi_category("pm25", 25.5) == "moderate"  # AQI 51
    assert aqi_category("temperature", 40.0) is None


@pytest.mark.parametrize(
    ("value", "line", "expected"),
    [(55.0, 40.0, INFO), (39.9, 40.0, WARNING), (20.0, 40.0, WARNING), (19.9, 40.0, CRITICAL),
     (3.0, 40.0, CRITICAL), (45.0, 50.0, WARNING)],
)
def test_download_against_the_line(value: float, line: float, expected: Severity) -> None:
    assert severity("download_mbps", value, 0.9, download_line_mbps=line) is expected


@pytest.mark.parametrize(
    ("value", "baseline", "expected"),
    [(10.0, 50.0, CRITICAL), (15.0, 50.0, CRITICAL), (25.0, 50.0, WARNING), (40.0, 50.0, INFO),
     (90.0, 50.0, INFO), (5.0, None, INFO), (5.0, 0.0, INFO)],
)
def test_traffic_speed_collapse_against_the_baseline(value: float, baseline: float | None,
                                                     expected: Severity) -> None:
    assert severity("speed_kmh", value, 0.85, baseline=baseline) is expected


@pytest.mark.parametrize(("score", "expected"), [(0.8, INFO), (0.89, INFO), (0.9, WARNING), (0.999, WARNING)])
def test_other_metrics_by_score_never_critical(score: float, expected: Severity) -> None:
    for metric in ("temperature", "noise", "latency_ms", "vehicle_count"):
        assert severity(metric, 1e6, score) is expected
    assert severity("pm25", None, score) is expected  # no value: the score decides


def test_severities_are_ordered() -> None:
    assert [s.rank for s in (INFO, WARNING, CRITICAL)] == [0, 1, 2]


def test_every_scored_metric_has_a_family() -> None:
    scored = {m for m in METRIC_KIND if m not in NOT_SCORED}
    assert scored <= set(FAMILY)
    assert set(FAMILY.values()) < set(FAMILIES)
    assert family("nonsense") == "other"
