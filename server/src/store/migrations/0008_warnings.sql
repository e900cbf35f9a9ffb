-- 0008: the warning (预警) before a case's deadline, and deadlines in working days.
--
-- The case row carries when the case goes into warning. Rows of open cases get it, and their
-- deadline counted again under the district's rules (working days, the escalation that keeps
-- the report's clock), from their documents in the same transaction (`refresh_deadlines`).
ALTER TABLE cases ADD COLUMN warn_at INTEGER;
-- Open cases by warning time: the "in warning" list and counts read only this index.
CREATE INDEX cases_open_warn ON cases (warn_at, town_id, village_id, grid_id)
    WHERE status IN ('reported', 'accepted', 'dispatched', 'handling');
