-- 0002: blobs (photos and thumbnails), which cases reference which photo, citizens, settings.

-- Complete, verified blobs of the content-addressed store (the bytes live in the data
-- directory under blobs/). A thumbnail names the photo it belongs to.
CREATE TABLE blobs (
    hash        TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    thumb_of    TEXT,
    device_id   TEXT NOT NULL,
    received_at INTEGER NOT NULL
) STRICT;
CREATE INDEX blobs_by_photo ON blobs (thumb_of);

-- Photo hashes referenced by each case's events: what a device may upload, and who may
-- see a photo.
CREATE TABLE case_photos (
    hash    TEXT NOT NULL,
    case_id TEXT NOT NULL REFERENCES documents (id),
    PRIMARY KEY (hash, case_id)
) STRICT;

-- Citizens registered anonymously. The phone number is kept only as a keyed hash (for
-- abuse limits) and a masked form (for handlers).
CREATE TABLE citizens (
    user_id       TEXT PRIMARY KEY REFERENCES users (id),
    name          TEXT,
    phone_hash    TEXT,
    phone_masked  TEXT,
    registered_at INTEGER NOT NULL
) STRICT;
CREATE INDEX citizens_by_phone ON citizens (phone_hash);

CREATE INDEX cases_by_reporter ON cases (reporter, reported_at);

-- Keyed values: `grid_shapes` (the district's grid polygons, GeoJSON), `phone_pepper` (the
-- key of phone hashes, made here once per data directory).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;
INSERT INTO settings (key, value) VALUES ('phone_pepper', randomblob(32));
