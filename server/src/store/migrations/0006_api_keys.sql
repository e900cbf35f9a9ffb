-- Open311 API keys, issued by operators from the CLI (`gridlink-server api-key`). Only the
-- SHA-256 of a key is kept; a key reads and writes within its scope (district or town:ID).
CREATE TABLE api_keys (
    key_hash   TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    scope      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    revoked_at INTEGER
) STRICT;
