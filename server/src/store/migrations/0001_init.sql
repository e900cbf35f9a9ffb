-- 0001: the district master record. Statements keep to SQL that PostgreSQL also accepts,
-- except the row-id primary keys (BIGSERIAL there) and STRICT.

CREATE TABLE users (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

-- Scope keys granted to users: district, town:…, village:…, grid:…, dept:…, enf:…, reporter:….
CREATE TABLE grants (
    user_id    TEXT NOT NULL REFERENCES users (id),
    scope      TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    granted_by TEXT NOT NULL,
    PRIMARY KEY (user_id, scope)
) STRICT;

-- Scopes once granted and withdrawn: a device whose cursor still names one deletes the
-- documents it covered. (Keys in a cursor that were never granted are ignored, so a device
-- cannot list documents by naming keys.)
CREATE TABLE revoked_grants (
    user_id    TEXT NOT NULL REFERENCES users (id),
    scope      TEXT NOT NULL,
    revoked_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, scope)
) STRICT;

-- One-time enrollment codes, kept only as SHA-256.
CREATE TABLE enroll_codes (
    code_hash  TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    device_id  TEXT
) STRICT;

-- Devices: the bearer token only as SHA-256; the actor prefix every change of the device
-- must carry.
CREATE TABLE devices (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id),
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    actor_prefix BLOB NOT NULL,
    enrolled_at  INTEGER NOT NULL,
    revoked_at   INTEGER
) STRICT;

CREATE TABLE grids (
    id         TEXT PRIMARY KEY,
    village_id TEXT NOT NULL,
    town_id    TEXT NOT NULL
) STRICT;

-- Documents: `base` is a full save covering the change log up to `base_seq`; loading = base
-- followed by the change rows after it.
CREATE TABLE documents (
    id       TEXT PRIMARY KEY,
    kind     TEXT NOT NULL,
    heads    BLOB NOT NULL,
    base     BLOB NOT NULL,
    base_seq INTEGER NOT NULL,
    chunks   INTEGER NOT NULL
) STRICT;

-- The append-only change log. `seq` is the global sequence number.
CREATE TABLE changes (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id    TEXT NOT NULL REFERENCES documents (id),
    device_id TEXT NOT NULL,
    bytes     BLOB NOT NULL,
    at        INTEGER NOT NULL
) STRICT;
CREATE INDEX changes_by_doc ON changes (doc_id, seq);

-- Which scopes each document is in, and the per-scope log that pull cursors walk. A document
-- that enters a scope (a dispatch to a department) gets its whole change log appended to
-- that scope's log, so devices of that scope receive it whole.
CREATE TABLE doc_scopes (
    doc_id TEXT NOT NULL REFERENCES documents (id),
    scope  TEXT NOT NULL,
    PRIMARY KEY (doc_id, scope)
) STRICT;
CREATE INDEX doc_scopes_by_scope ON doc_scopes (scope, doc_id);

CREATE TABLE scope_log (
    pos        INTEGER PRIMARY KEY AUTOINCREMENT,
    scope      TEXT NOT NULL,
    change_seq INTEGER NOT NULL REFERENCES changes (seq)
) STRICT;
CREATE INDEX scope_log_by_scope ON scope_log (scope, pos);

-- Materialized case rows for queries (command centre, statistics).
CREATE TABLE cases (
    id           TEXT PRIMARY KEY REFERENCES documents (id),
    grid_id      TEXT NOT NULL,
    village_id   TEXT NOT NULL,
    town_id      TEXT NOT NULL,
    category     TEXT NOT NULL,
    source       TEXT NOT NULL,
    status       TEXT NOT NULL,
    level        TEXT NOT NULL,
    assignee     TEXT,
    reporter     TEXT,
    title        TEXT NOT NULL,
    reported_at  INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    due_at       INTEGER,
    closed_at    INTEGER,
    solved_level TEXT,
    flagged      INTEGER NOT NULL,
    events       INTEGER NOT NULL
) STRICT;
CREATE INDEX cases_by_town ON cases (town_id, status, updated_at);
CREATE INDEX cases_by_grid ON cases (grid_id, status, updated_at);
CREATE INDEX cases_by_status ON cases (status, updated_at);

-- Every accepted (and refused) push and every administrative action.
CREATE TABLE audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    device  TEXT,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail  TEXT NOT NULL
) STRICT;
CREATE INDEX audit_by_subject ON audit (subject, id);
