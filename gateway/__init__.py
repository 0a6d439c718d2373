"""MQTT gateway: authenticates, validates and batches device readings, acknowledging only durable ones."""
