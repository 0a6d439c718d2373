"""Grafana as code: the urbanpulse dashboards, their provisioning files and a macro expander for tests."""
