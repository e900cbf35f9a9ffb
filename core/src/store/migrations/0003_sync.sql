-- 0003: what the sync client keeps: the device's enrollment and pull cursor, the outbox state
-- the UI shows per document, and the edits the server refused (kept so the user sees them).

-- Small keyed values: `token`, `actor_prefix`, `epoch`, `cursor`, `enrolled_device`.
CREATE TABLE sync_meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

-- The last thing sync did with a document: `sent`, `accepted` or `rejected` (with why).
-- Whether a document still has unsent changes is read from documents.heads vs
-- sync_state.acked_heads, never stored twice.
CREATE TABLE outbox (
    doc_id  TEXT PRIMARY KEY REFERENCES documents (id) ON DELETE CASCADE,
    state   TEXT NOT NULL,
    code    TEXT,
    message TEXT,
    at      INTEGER NOT NULL
) STRICT;

-- Edits the server refused. Not tied to documents: a refused report leaves no document.
CREATE TABLE rejected_edits (
    id      INTEGER PRIMARY KEY,
    doc_id  TEXT NOT NULL,
    event   TEXT NOT NULL,
    code    TEXT NOT NULL,
    message TEXT NOT NULL,
    at      INTEGER NOT NULL
) STRICT;

CREATE INDEX rejected_edits_by_at ON rejected_edits (at DESC, id DESC);
