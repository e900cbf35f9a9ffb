-- 0002: Chinese full-text search over cases, and the quarantine for documents that cannot load.

-- Bigram terms (see core/src/search.rs); rowid = cases.rowid. Filled for existing rows by the
-- migration's Rust step.
CREATE VIRTUAL TABLE case_search USING fts5 (terms, tokenize = 'unicode61 remove_diacritics 0');

-- Bytes that could not be loaded or applied: kept aside for support, never silently dropped.
CREATE TABLE quarantine (
    id       INTEGER PRIMARY KEY,
    doc_id   TEXT NOT NULL,
    origin   TEXT NOT NULL,
    reason   TEXT NOT NULL,
    bytes    BLOB NOT NULL,
    at       INTEGER NOT NULL
) STRICT;

CREATE INDEX quarantine_by_doc ON quarantine (doc_id);
