-- 0007: the command centre (web pages for operators) and Open311 read from the case rows
-- alone, never from the documents, however many cases a page lists.
--
-- The case row carries where the case is and what was written about it. Rows written before
-- this migration are filled from their documents when the store opens (`refresh_case_rows`).
ALTER TABLE cases ADD COLUMN lat REAL;
ALTER TABLE cases ADD COLUMN lon REAL;
ALTER TABLE cases ADD COLUMN address_id TEXT;
ALTER TABLE cases ADD COLUMN description TEXT NOT NULL DEFAULT '';
CREATE INDEX cases_by_town_reported ON cases (town_id, reported_at);
INSERT INTO settings (key, value) SELECT 'refresh_case_rows', X'01' WHERE EXISTS (SELECT 1 FROM cases);
-- Open cases by deadline, with their place: overdue counts of any area read only this index.
CREATE INDEX cases_open_due ON cases (due_at, town_id, village_id, grid_id)
    WHERE status IN ('reported', 'accepted', 'dispatched', 'handling');

-- case_counts: cases per report day (Asia/Shanghai), town and category, closed or not, and
-- the level that solved them: the statistics page of a town or of the district, and the
-- completion rate and 721 split of any period (it refines case_days of 0005, which it
-- replaces), without reading the case rows.
CREATE TABLE case_counts (
    day          INTEGER NOT NULL,
    town_id      TEXT NOT NULL,
    category     TEXT NOT NULL,
    closed       INTEGER NOT NULL,
    solved_level TEXT NOT NULL,
    n            INTEGER NOT NULL,
    PRIMARY KEY (day, town_id, category, closed, solved_level)
) STRICT, WITHOUT ROWID;
INSERT INTO case_counts (day, town_id, category, closed, solved_level, n)
    SELECT (reported_at + 28800000) / 86400000, town_id, category, status = 'closed',
           COALESCE(solved_level, ''), COUNT(*)
    FROM cases GROUP BY 1, 2, 3, 4, 5;
DROP TABLE case_days;

-- open_cases: cases still to be solved per grid and the level holding them, for the district
-- map's shading and the statistics page's "open by level".
CREATE TABLE open_cases (
    grid_id TEXT NOT NULL,
    level   TEXT NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (grid_id, level)
) STRICT, WITHOUT ROWID;
INSERT INTO open_cases (grid_id, level, n)
    SELECT grid_id, level, COUNT(*) FROM cases
    WHERE status IN ('reported', 'accepted', 'dispatched', 'handling') GROUP BY grid_id, level;

-- Operators' web passwords (argon2id PHC strings) and their sessions. A session is kept by
-- the SHA-256 of its cookie; the CSRF token is per session.
CREATE TABLE web_passwords (
    user_id TEXT PRIMARY KEY REFERENCES users (id),
    hash    TEXT NOT NULL,
    set_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE web_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX web_sessions_by_user ON web_sessions (user_id);
