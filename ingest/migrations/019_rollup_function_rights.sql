-- Rights of the long-range rollups' compute functions (018). Only traffic_district_1h_compute reads a
-- relation urbanpulse_grafana may not (devices, for each detector's district), so it alone keeps the
-- owner's rights, and only its owner and the Grafana role may run it. The other three read only
-- relations the Grafana role may read, and run with the caller's rights like any query.
ALTER FUNCTION traffic_device_1d_compute(timestamptz, timestamptz) SECURITY INVOKER;
ALTER FUNCTION traffic_device_3h_compute(timestamptz, timestamptz) SECURITY INVOKER;
ALTER FUNCTION air_aqi_3h_compute(timestamptz, timestamptz) SECURITY INVOKER;
REVOKE ALL ON FUNCTION traffic_district_1h_compute(timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION traffic_district_1h_compute(timestamptz, timestamptz) TO urbanpulse_grafana;
