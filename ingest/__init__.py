"""Storage: migrations, the idempotent batch writer, dead letters and events tables."""
