-- 0005: roll-ups that keep period statistics cheap however long the history grows, each kept
-- with every merge in the same transaction as the rows it sums.
--
-- score_blocks: the day sums of score_days over blocks of 30 days (block = day / 30), so a
-- nine-month period reads a few rows per unit plus the days at its edges.
CREATE TABLE score_blocks (
    unit   TEXT NOT NULL,
    block  INTEGER NOT NULL,
    points REAL NOT NULL,
    lines  INTEGER NOT NULL,
    PRIMARY KEY (unit, block)
) STRICT, WITHOUT ROWID;
CREATE INDEX score_blocks_by_block ON score_blocks (block, unit);
INSERT INTO score_blocks (unit, block, points, lines)
    SELECT unit, day / 30, SUM(points), SUM(lines) FROM score_days GROUP BY unit, day / 30;

-- case_days: cases per report day (Asia/Shanghai), closed or not, and the level that solved
-- them ('' while unsolved): the completion rate and 721 split of any period.
CREATE TABLE case_days (
    day          INTEGER NOT NULL,
    closed       INTEGER NOT NULL,
    solved_level TEXT NOT NULL,
    n            INTEGER NOT NULL,
    PRIMARY KEY (day, closed, solved_level)
) STRICT, WITHOUT ROWID;
INSERT INTO case_days (day, closed, solved_level, n)
    SELECT (reported_at + 28800000) / 86400000, status = 'closed', COALESCE(solved_level, ''), COUNT(*)
    FROM cases GROUP BY 1, 2, 3;
