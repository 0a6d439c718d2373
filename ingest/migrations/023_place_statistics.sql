-- Statistics on the devices' places as the dashboards filter them. Since 021, grafana_devices shows a device
-- without a place under 'unknown' (coalesce(province, 'unknown'), coalesce(district, 'unknown')), and the
-- planner has no statistics on those expressions: it took the 200 traffic detectors of "All" for 2, joined
-- them to 33,600 detector-hours by a nested loop (3.3 million comparisons), and "Speed per segment" over
-- 7 days went from about 140 ms p95 to 450-780 ms (bench/dashboards.py). With the expressions' statistics it
-- plans a hash join again: 130 ms. ANALYZE (autovacuum's, or the one below) keeps them.
CREATE STATISTICS devices_province_place ON (coalesce(province, 'unknown')) FROM devices;
CREATE STATISTICS devices_district_place ON (coalesce(district, 'unknown')) FROM devices;
ANALYZE devices;
