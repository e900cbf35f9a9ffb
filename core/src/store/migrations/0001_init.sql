-- 0001: documents with incremental chunks, server acknowledgements, and the case index rows.

-- One row per Automerge document: `base` is the last compacted save; changes made since then
-- are appended to doc_chunks and folded back into `base` by compaction. `heads` are the
-- document's current heads (sorted 32-byte hashes), compared with sync_state.acked_heads.
CREATE TABLE documents (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    base        BLOB NOT NULL,
    chunk_count INTEGER NOT NULL DEFAULT 0,
    heads       BLOB NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE doc_chunks (
    doc_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    bytes  BLOB NOT NULL,
    PRIMARY KEY (doc_id, seq)
) STRICT;

-- The heads the server is known to hold, per document (32-byte change hashes, concatenated).
CREATE TABLE sync_state (
    doc_id      TEXT PRIMARY KEY REFERENCES documents (id) ON DELETE CASCADE,
    acked_heads BLOB NOT NULL
) STRICT;

-- The query index: one row per case, rewritten with its document in one transaction.
CREATE TABLE cases (
    doc_id       TEXT PRIMARY KEY REFERENCES documents (id) ON DELETE CASCADE,
    status       TEXT NOT NULL,
    level        TEXT NOT NULL,
    category     TEXT NOT NULL,
    source       TEXT NOT NULL,
    grid_id      TEXT NOT NULL,
    address_id   TEXT,
    assignee     TEXT,
    reporter     TEXT,
    title        TEXT NOT NULL,
    description  TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    due_at       INTEGER,
    solved_level TEXT,
    flagged      INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX cases_by_updated ON cases (updated_at DESC, doc_id);
CREATE INDEX cases_by_status ON cases (status, updated_at DESC, doc_id);
CREATE INDEX cases_by_grid ON cases (grid_id, updated_at DESC, doc_id);
CREATE INDEX cases_by_assignee ON cases (assignee, updated_at DESC, doc_id);
CREATE INDEX cases_by_reporter ON cases (reporter, updated_at DESC, doc_id);
CREATE INDEX cases_by_due ON cases (due_at, doc_id) WHERE due_at IS NOT NULL;
