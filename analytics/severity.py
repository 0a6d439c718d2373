"""What an event means: its metric family (what incidents group by) and its severity.

Declared as data, once. Severity is ``info``, ``warning`` or ``critical``, from domain rules where
the metric has one and from the anomaly score otherwise:

- air pollutants (PM2.5, PM10, O3, NO2, SO2, CO): the VN_AQI category of the event's peak
  concentration (:mod:`urbanpulse.ingest.aqi`, O3 against the 1-hour row): good / moderate -> info,
  poor / bad -> warning, very bad / hazardous -> critical. The index is meant for hourly means; a
  single reading is a proxy, which is enough to rank an anomaly already found by the detector.
- 4G/5G download: under the national line (``download_line_mbps``, 40 Mbit/s) -> warning, under
  half of it -> critical, at or above it -> info (an unusual but adequate speed test).
- traffic speed: a collapse against the series' baseline -- at most 30 % of it -> critical, at most
  60 % -> warning; anything else (faster than usual) -> info.
- every other metric: score at least 0.9 (z >= 9 with the default scale) -> warning, else info.
  Without a domain rule nothing is critical: a huge z on a thermometer is usually the sensor.

>>> severity("pm25", 260.0, 0.95)  # AQI 310: hazardous
<Severity.CRITICAL: 'critical'>
>>> severity("download_mbps", 31.0, 0.85)
<Severity.WARNING: 'warning'>
>>> severity("speed_kmh", 12.0, 0.9, baseline=50.0)
<Severity.CRITICAL: 'critical'>
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass

from urbanpulse.contract import SLOW_DOWNLOAD_MBPS
from urbanpulse.ingest.aqi import category, round_aqi, sub_index

__all__ = ["FAMILIES", "FAMILY", "FAMILY_LABEL", "RULES", "Rule", "Severity", "aqi_category", "family",
           "severity"]


class Severity(enum.StrEnum):
    """How urgently an operator should look, in rising order."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return SEVERITIES.index(self)


SEVERITIES = (Severity.INFO, Severity.WARNING, Severity.CRITICAL)

# Metric families: events of one family in one place at one time are one incident.
FAMILY: dict[str, str] = {
    **dict.fromkeys(("pm25", "pm10", "no2", "o3", "so2", "co"), "air_quality"),
    **dict.fromkeys(("temperature", "humidity"), "weather"),
    "noise": "noise",
    **dict.fromkeys(("vehicle_count", "speed_kmh", "occupancy_pct"), "traffic"),
    **dict.fromkeys(("download_mbps", "upload_mbps", "latency_ms", "jitter_ms", "packet_loss_pct", "rsrp_dbm"),
                    "network"),
}
FAMILIES = ("air_quality", "weather", "noise", "traffic", "network", "other")  # order fixes the lock keys
FAMILY_LABEL = {"air_quality": "Air quality", "weather": "Weather", "noise": "Noise", "traffic": "Traffic",
                "network": "Mobile network", "other": "Other"}

AQI_TABLE = {"pm25": "pm25", "pm10": "pm10", "o3": "o3_1h", "no2": "no2", "so2": "so2", "co": "co"}
AQI_SEVERITY = {"good": Severity.INFO, "moderate": Severity.INFO, "poor": Severity.WARNING,
                "bad": Severity.WARNING, "very_bad": Severity.CRITICAL, "hazardous": Severity.CRITICAL}
GENERIC_WARNING_SCORE = 0.9
SPEED_CRITICAL_SHARE = 0.3  # of the baseline speed
SPEED_WARNING_SHARE = 0.6
DOWNLOAD_CRITICAL_SHARE = 0.5  # of the download line


def family(metric: str) -> str:
    """The metric family of ``metric`` (``other`` when unknown)."""
    return FAMILY.get(metric, "other")


def aqi_category(metric: str, concentration: float) -> str | None:
    """The VN_AQI category key of one concentration of ``metric`` (``None`` if it is no pollutant)."""
    table = AQI_TABLE.get(metric)
    if table is None:
        return None
    index = sub_index(table, concentration)
    return None if index is None else category(round_aqi(index))


@dataclass(frozen=True, slots=True)
class Context:
    """What a rule may look at besides the value: score, baseline level and the configured lines."""

    score: float
    baseline: float | None
    download_line_mbps: float


@dataclass(frozen=True, slots=True)
class Rule:
    """A domain rule: the severity of a peak ``value`` of one of ``metrics``."""

    metrics: frozenset[str]
    rate: Callable[[str, float, Context], Severity]
    describe: str


def _aqi(metric: str, value: float, _: Context) -> Severity:
    key = aqi_category(metric, value)
    return Severity.INFO if key is None else AQI_SEVERITY[key]


def _download(_: str, value: float, ctx: Context) -> Severity:
    if value < ctx.download_line_mbps * DOWNLOAD_CRITICAL_SHARE:
        return Severity.CRITICAL
    return Severity.WARNING if value < ctx.download_line_mbps else Severity.INFO


def _speed(_: str, value: float, ctx: Context) -> Severity:
    if ctx.baseline is None or not ctx.baseline > 0:
        return _generic(ctx.score)
    share = value / ctx.baseline
    if share <= SPEED_CRITICAL_SHARE:
        return Severity.CRITICAL
    return Severity.WARNING if share <= SPEED_WARNING_SHARE else Severity.INFO


def _generic(score: float) -> Severity:
    return Severity.WARNING if score >= GENERIC_WARNING_SCORE else Severity.INFO


RULES: tuple[Rule, ...] = (
    Rule(frozenset(AQI_TABLE), _aqi, "VN_AQI category of the peak concentration"),
    Rule(frozenset({"download_mbps"}), _download, "peak value against the download line"),
    Rule(frozenset({"speed_kmh"}), _speed, "peak value against the baseline speed"),
)
_BY_METRIC = {metric: rule for rule in RULES for metric in rule.metrics}


def severity(
    metric: str, value: float | None, score: float, *, baseline: float | None = None,
    download_line_mbps: float = SLOW_DOWNLOAD_MBPS,
) -> Severity:
    """The severity of an event of ``metric`` whose peak (most anomalous) reading is ``value`` at ``score``."""
    rule = _BY_METRIC.get(metric)
    if rule is None or value is None or not math.isfinite(value):
        return _generic(score)
    return rule.rate(metric, value, Context(score, baseline, download_line_mbps))
