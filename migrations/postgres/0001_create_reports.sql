-- Saved reports, as in the SQLite store (migrations/0001_create_reports.sql):
-- one row per finished path test; `body` is the report JSON (docs/api.md,
-- "Saved reports"); the other columns are what /admin lists and filters on
-- and what retention deletes by.
CREATE TABLE reports (
    id             TEXT PRIMARY KEY,        -- 32 hex chars, 128 random bits
    created_at_ms  BIGINT NOT NULL,         -- Unix time, milliseconds
    label          TEXT,                    -- support's case label, validated
    client_address TEXT NOT NULL,
    worst          TEXT,                    -- most severe finding: info/warning/error
    summary        TEXT NOT NULL,           -- the verdict line
    body           TEXT NOT NULL,           -- the report JSON
    size           BIGINT NOT NULL          -- length of body in bytes
);
CREATE INDEX reports_by_time ON reports (created_at_ms);
CREATE INDEX reports_by_label ON reports (label, created_at_ms);
