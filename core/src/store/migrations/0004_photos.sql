-- 0004: the photo queue and the citizen's reports.

-- One row per processed photo (named by the SHA-256 of its JPEG). The row is written in the
-- same transaction as the photo's bytes, so a photo is either fully captured or absent.
-- state: processed | uploading | uploaded | failed | quarantined.
CREATE TABLE photos (
    hash            TEXT PRIMARY KEY,
    case_id         TEXT NOT NULL,
    size            INTEGER NOT NULL,
    width           INTEGER NOT NULL,
    height          INTEGER NOT NULL,
    thumb_hash      TEXT NOT NULL,
    thumb_size      INTEGER NOT NULL,
    taken_at        INTEGER NOT NULL,
    state           TEXT NOT NULL,
    thumb_sent      INTEGER NOT NULL DEFAULT 0,
    confirmed       INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    original_path   TEXT,
    uploaded_at     INTEGER,
    created_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX photos_by_state ON photos (state, next_attempt_at);
CREATE INDEX photos_by_case ON photos (case_id);

-- The bytes: `full` (the processed JPEG; evicted under storage pressure only once uploaded)
-- and `thumb`.
CREATE TABLE photo_data (
    hash TEXT NOT NULL REFERENCES photos (hash) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (hash, kind)
) STRICT;

-- Photos of other people's cases, downloaded to be seen offline (SHA-256 verified), evicted
-- oldest first beyond the cache budget. kind: full | thumb.
CREATE TABLE photo_cache (
    hash       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    data       BLOB NOT NULL,
    fetched_at INTEGER NOT NULL,
    PRIMARY KEY (hash, kind)
) STRICT;
CREATE INDEX photo_cache_by_age ON photo_cache (fetched_at);

-- A citizen's 随手拍 reports: kept here until the server accepted them, then refreshed with
-- the status and closing note the server reports. state: pending | submitted | refused.
CREATE TABLE citizen_reports (
    id           TEXT PRIMARY KEY,
    category     TEXT NOT NULL,
    text         TEXT NOT NULL,
    lat          REAL NOT NULL,
    lon          REAL NOT NULL,
    accuracy_m   REAL NOT NULL,
    photos       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    state        TEXT NOT NULL,
    error        TEXT,
    grid_id      TEXT,
    status       TEXT,
    status_label TEXT,
    closing_note TEXT,
    updated_at   INTEGER NOT NULL
) STRICT;
