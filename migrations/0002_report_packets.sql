-- The run's packets as the server captured them (pcapng, at most 1 MiB),
-- served at /r/{id}/packets.pcapng. `size` now counts them with the body:
-- the store's budget is for both.
ALTER TABLE reports ADD COLUMN packets BLOB;
