-- 0004: the index rows of record documents (standard addresses, visits, mediation files,
-- templates), rewritten with each merge: patrol coverage and the lists the command centre
-- reads come from here, the documents stay the truth.
CREATE TABLE records (
    doc_id     TEXT PRIMARY KEY REFERENCES documents (id),
    kind       TEXT NOT NULL,
    grid_id    TEXT,
    subject    TEXT,
    title      TEXT NOT NULL,
    actor      TEXT,
    started_at INTEGER,
    done_at    INTEGER,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX records_by_grid ON records (kind, grid_id, subject);
CREATE INDEX records_by_subject ON records (kind, subject, done_at);

-- Cases by report time: the 721 split and completion rate of a period.
CREATE INDEX cases_by_reported ON cases (reported_at, status, solved_level);
