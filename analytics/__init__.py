"""Streaming anomaly detection: robust EWMA z-scores over committed readings, turned into events."""
