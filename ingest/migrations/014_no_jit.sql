-- No JIT compilation for this database's sessions. Dashboard queries read the rollup views, whose
-- live parts the planner cannot size (their bounds come from rollup_state at run time), so their
-- estimated cost passes jit_above_cost and each query spent 100+ ms compiling expressions to run a
-- 10-20 ms plan (bench/queries.py: province hourly PM2.5 over a day 125 -> 15 ms p50). Nothing here
-- scans enough rows for JIT to pay off. The database setting needs its owner or a superuser; without
-- that privilege Grafana's role still gets it (the dashboards' sessions), and the notice says so.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET jit = off', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'urbanpulse: not allowed to set jit = off for database %; set it for the application role',
        current_database();
END
$$;
ALTER ROLE urbanpulse_grafana SET jit = off;
