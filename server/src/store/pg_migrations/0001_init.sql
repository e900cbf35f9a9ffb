-- The district master on PostgreSQL, schema 1: the SQLite backend's tables (its schema 7) in
-- PostgreSQL's types. Text that is compared or sorted uses the "C" collation, so lists come
-- out in the byte order SQLite gives them, whatever the database's default collation.
-- Frozen once released: later changes are new numbered files.

CREATE TABLE users (
    id         TEXT COLLATE "C" PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE grants (
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    scope      TEXT COLLATE "C" NOT NULL,
    granted_at BIGINT NOT NULL,
    granted_by TEXT NOT NULL,
    PRIMARY KEY (user_id, scope)
);

CREATE TABLE revoked_grants (
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    scope      TEXT COLLATE "C" NOT NULL,
    revoked_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, scope)
);

CREATE TABLE enroll_codes (
    code_hash  TEXT COLLATE "C" PRIMARY KEY,
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    device_id  TEXT
);

CREATE TABLE devices (
    id           TEXT COLLATE "C" PRIMARY KEY,
    user_id      TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    name         TEXT NOT NULL,
    token_hash   TEXT COLLATE "C" NOT NULL UNIQUE,
    actor_prefix BYTEA NOT NULL,
    enrolled_at  BIGINT NOT NULL,
    revoked_at   BIGINT
);

CREATE TABLE grids (
    id         TEXT COLLATE "C" PRIMARY KEY,
    village_id TEXT COLLATE "C" NOT NULL,
    town_id    TEXT COLLATE "C" NOT NULL
);

CREATE TABLE documents (
    id       TEXT COLLATE "C" PRIMARY KEY,
    kind     TEXT NOT NULL,
    heads    BYTEA NOT NULL,
    base     BYTEA NOT NULL,
    base_seq BIGINT NOT NULL,
    chunks   INTEGER NOT NULL
);

-- Sequence numbers are taken under the commit lock (see postgres.rs), so their order is
-- commit order and a cursor never passes a change still being written.
CREATE TABLE changes (
    seq       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    doc_id    TEXT COLLATE "C" NOT NULL REFERENCES documents (id),
    device_id TEXT COLLATE "C" NOT NULL,
    bytes     BYTEA NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX changes_by_doc ON changes (doc_id, seq);

CREATE TABLE doc_scopes (
    doc_id TEXT COLLATE "C" NOT NULL REFERENCES documents (id),
    scope  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (doc_id, scope)
);
CREATE INDEX doc_scopes_by_scope ON doc_scopes (scope, doc_id);

CREATE TABLE scope_log (
    pos        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope      TEXT COLLATE "C" NOT NULL,
    change_seq BIGINT NOT NULL REFERENCES changes (seq)
);
CREATE INDEX scope_log_by_scope ON scope_log (scope, pos);

CREATE TABLE cases (
    id           TEXT COLLATE "C" PRIMARY KEY REFERENCES documents (id),
    grid_id      TEXT COLLATE "C" NOT NULL,
    village_id   TEXT COLLATE "C" NOT NULL,
    town_id      TEXT COLLATE "C" NOT NULL,
    category     TEXT COLLATE "C" NOT NULL,
    source       TEXT COLLATE "C" NOT NULL,
    status       TEXT COLLATE "C" NOT NULL,
    level        TEXT COLLATE "C" NOT NULL,
    assignee     TEXT,
    reporter     TEXT COLLATE "C",
    title        TEXT NOT NULL,
    reported_at  BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    due_at       BIGINT,
    closed_at    BIGINT,
    solved_level TEXT,
    flagged      BIGINT NOT NULL,
    events       BIGINT NOT NULL,
    lat          DOUBLE PRECISION,
    lon          DOUBLE PRECISION,
    address_id   TEXT,
    description  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX cases_by_town ON cases (town_id, status, updated_at);
CREATE INDEX cases_by_grid ON cases (grid_id, status, updated_at);
CREATE INDEX cases_by_status ON cases (status, updated_at);
CREATE INDEX cases_by_reporter ON cases (reporter, reported_at);
CREATE INDEX cases_by_due ON cases (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX cases_by_reported ON cases (reported_at, id);
CREATE INDEX cases_by_town_reported ON cases (town_id, reported_at);
CREATE INDEX cases_open_due ON cases (due_at, town_id, village_id, grid_id)
    WHERE status IN ('reported', 'accepted', 'dispatched', 'handling');

CREATE TABLE audit (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    device  TEXT,
    action  TEXT NOT NULL,
    subject TEXT COLLATE "C" NOT NULL,
    detail  TEXT NOT NULL
);
CREATE INDEX audit_by_subject ON audit (subject, id);

CREATE TABLE blobs (
    hash        TEXT COLLATE "C" PRIMARY KEY,
    size        BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    thumb_of    TEXT COLLATE "C",
    device_id   TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX blobs_by_photo ON blobs (thumb_of);

-- `id` orders the references: the first one names the photo's owner.
CREATE TABLE case_photos (
    id      BIGINT GENERATED ALWAYS AS IDENTITY,
    hash    TEXT COLLATE "C" NOT NULL,
    case_id TEXT COLLATE "C" NOT NULL REFERENCES documents (id),
    PRIMARY KEY (hash, case_id)
);
CREATE INDEX case_photos_first ON case_photos (hash, id);

CREATE TABLE citizens (
    user_id       TEXT COLLATE "C" PRIMARY KEY REFERENCES users (id),
    name          TEXT,
    phone_hash    TEXT COLLATE "C",
    phone_masked  TEXT,
    registered_at BIGINT NOT NULL
);
CREATE INDEX citizens_by_phone ON citizens (phone_hash);

CREATE TABLE settings (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE score_lines (
    case_id TEXT COLLATE "C" NOT NULL REFERENCES documents (id),
    unit    TEXT COLLATE "C" NOT NULL,
    points  DOUBLE PRECISION NOT NULL,
    reason  TEXT NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX score_lines_by_case ON score_lines (case_id);
CREATE INDEX score_lines_by_time ON score_lines (at, unit);

CREATE TABLE score_days (
    unit   TEXT COLLATE "C" NOT NULL,
    day    BIGINT NOT NULL,
    points DOUBLE PRECISION NOT NULL,
    lines  BIGINT NOT NULL,
    PRIMARY KEY (unit, day)
);
CREATE INDEX score_days_by_day ON score_days (day, unit);

CREATE TABLE score_blocks (
    unit   TEXT COLLATE "C" NOT NULL,
    block  BIGINT NOT NULL,
    points DOUBLE PRECISION NOT NULL,
    lines  BIGINT NOT NULL,
    PRIMARY KEY (unit, block)
);
CREATE INDEX score_blocks_by_block ON score_blocks (block, unit);

CREATE TABLE records (
    doc_id     TEXT COLLATE "C" PRIMARY KEY REFERENCES documents (id),
    kind       TEXT COLLATE "C" NOT NULL,
    grid_id    TEXT COLLATE "C",
    subject    TEXT COLLATE "C",
    title      TEXT NOT NULL,
    actor      TEXT,
    started_at BIGINT,
    done_at    BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX records_by_grid ON records (kind, grid_id, subject);
CREATE INDEX records_by_subject ON records (kind, subject, done_at);

CREATE TABLE api_keys (
    key_hash   TEXT COLLATE "C" PRIMARY KEY,
    name       TEXT NOT NULL,
    scope      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE case_counts (
    day          BIGINT NOT NULL,
    town_id      TEXT COLLATE "C" NOT NULL,
    category     TEXT COLLATE "C" NOT NULL,
    closed       BOOLEAN NOT NULL,
    solved_level TEXT COLLATE "C" NOT NULL,
    n            BIGINT NOT NULL,
    PRIMARY KEY (day, town_id, category, closed, solved_level)
);

CREATE TABLE open_cases (
    grid_id TEXT COLLATE "C" NOT NULL,
    level   TEXT COLLATE "C" NOT NULL,
    n       BIGINT NOT NULL,
    PRIMARY KEY (grid_id, level)
);

CREATE TABLE web_passwords (
    user_id TEXT COLLATE "C" PRIMARY KEY REFERENCES users (id),
    hash    TEXT NOT NULL,
    set_at  BIGINT NOT NULL
);

CREATE TABLE web_sessions (
    token_hash TEXT COLLATE "C" PRIMARY KEY,
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX web_sessions_by_user ON web_sessions (user_id);
