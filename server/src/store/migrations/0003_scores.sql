-- 0003: the score lines of every case (智能考核), rewritten with each merge of the case, so
-- that scores per unit and period are a sum over an index and follow every change at once.
CREATE TABLE score_lines (
    case_id TEXT NOT NULL REFERENCES documents (id),
    unit    TEXT NOT NULL,
    points  REAL NOT NULL,
    reason  TEXT NOT NULL,
    at      INTEGER NOT NULL
) STRICT;
CREATE INDEX score_lines_by_case ON score_lines (case_id);
CREATE INDEX score_lines_by_time ON score_lines (at, unit);

-- The same lines summed per unit and day (Asia/Shanghai), kept with every rewrite: a period's
-- scores read a few thousand rows however long the history.
CREATE TABLE score_days (
    unit   TEXT NOT NULL,
    day    INTEGER NOT NULL,
    points REAL NOT NULL,
    lines  INTEGER NOT NULL,
    PRIMARY KEY (unit, day)
) STRICT, WITHOUT ROWID;
CREATE INDEX score_days_by_day ON score_days (day, unit);

-- Open cases by deadline: the overdue list and automatic escalation.
CREATE INDEX cases_by_due ON cases (due_at) WHERE due_at IS NOT NULL;
