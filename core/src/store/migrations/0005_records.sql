-- 0005: index rows of record documents (standard addresses, visits, mediation files,
-- templates), rewritten with their document in one transaction.
--
-- `words` holds what a record is found by (address text, people's and enterprises' names),
-- indexed as bigram terms in `record_search` (rowid = records.rowid); results are shown masked by role, the terms
-- never leave the phone. `lat`/`lon` (WGS-84) serve "addresses near me".
CREATE TABLE records (
    doc_id     TEXT PRIMARY KEY REFERENCES documents (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    grid_id    TEXT,
    subject    TEXT,
    actor      TEXT,
    title      TEXT NOT NULL,
    words      TEXT NOT NULL,
    lat        REAL,
    lon        REAL,
    started_at INTEGER,
    done_at    INTEGER,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX records_by_kind ON records (kind, grid_id, subject);
CREATE INDEX records_by_place ON records (kind, lat, lon) WHERE lat IS NOT NULL;

CREATE VIRTUAL TABLE record_search USING fts5 (terms, tokenize = 'unicode61 remove_diacritics 0');
