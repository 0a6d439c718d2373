# The urbanpulse image: one CLI, every service (gateway, analytics, sim, migrations, dashboards).
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY urbanpulse ./urbanpulse
COPY gateway ./gateway
COPY ingest ./ingest
COPY analytics ./analytics
COPY dashboards ./dashboards
COPY firmware-sim ./firmware-sim
RUN pip install --no-cache-dir . && rm -rf /src
WORKDIR /app
ENTRYPOINT ["urbanpulse"]
