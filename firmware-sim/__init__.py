"""Firmware simulator: a city of air, traffic and speed-test devices publishing over MQTT."""
