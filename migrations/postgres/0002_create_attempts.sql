-- Recent HTTPS attempts shared between instances (src/pg/attempts.rs), kept
-- for the recent window (--attempts-ttl) only. What is stored is what was
-- observed: the ClientHello's and the SYN's raw bytes, parsed again on read,
-- and the connection's other facts as JSON (src/attempt/stored.rs).
CREATE TABLE attempts (
    row_id        BIGSERIAL PRIMARY KEY,
    origin        BIGINT NOT NULL,          -- random per process: a reader skips its own rows (it holds them in memory)
    instance      TEXT NOT NULL,            -- --instance-name of the instance that saw it
    attempt_id    BIGINT NOT NULL,          -- the attempt's id on that instance
    address       TEXT NOT NULL,            -- client address, canonical
    started_at_ms BIGINT NOT NULL,          -- Unix time, milliseconds
    hello         BYTEA NOT NULL,           -- the ClientHello as it arrived (or a failed attempt's first bytes)
    syn           BYTEA,                    -- the client's SYN as the kernel saved it
    meta          TEXT NOT NULL             -- times, addresses, reads, TCP_INFO, outcome... (JSON, versioned)
);
CREATE INDEX attempts_by_address ON attempts (address, started_at_ms DESC);
CREATE INDEX attempts_by_time ON attempts (started_at_ms);
