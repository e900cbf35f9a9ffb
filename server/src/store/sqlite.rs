//! The embedded backend: one SQLite file (`gridlink.sqlite`) in the data directory.
//!
//! One writer connection (SQLite has one writer anyway) and a small pool of reader connections,
//! which WAL lets run beside the writer: pulls never wait for a merge. `synchronous=FULL`:
//! an acknowledgement tells the phone it may stop resending, so an acknowledged change must
//! survive a power cut.

use super::rollups::{CaseCounted, CountedLine, RollupDelta};
use super::sql::{
    CASE_COLUMNS, OPEN_STATUSES, PageReader, admin, encode_heads, parse_scopes, reason_code,
};
use super::{
    ApiKey, Area, AuditEntry, BlobIndex, BlobRow, CaseCount, CaseFilter, CaseQueries, CaseRow,
    Citizen, CoverageRow, DeviceAuth, Directory, DocumentStore, Merge, NewDevice, PhotoCase,
    PullPage, ScoreTotal, SettingsAudit, Statistics, StoreError, StoreResult, StoredDoc, User,
    WebSession,
};
use crate::state::now_ms;
use gridlink_core::case::Role;
use gridlink_core::doc::DocKind;
use gridlink_core::sync::scope::{GridPlace, ScopeKey};
use gridlink_core::sync::visibility::PlaceFilter;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

// The backend's errors in the contract's terms.
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::Full(e.to_string()),
            Some(
                ErrorCode::CannotOpen
                | ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::OutOfMemory,
            ) => StoreError::Unavailable(e.to_string()),
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                StoreError::Corrupt(e.to_string())
            }
            _ => StoreError::Database(e.to_string()),
        }
    }
}

/// A numbered schema migration: its frozen SQL and the data work SQL alone cannot do (folding
/// Automerge documents in Rust), run in the same transaction as the SQL and the bump of
/// `PRAGMA user_version`, as on the phone (`gridlink_core::store` migrations). Never edit one
/// that has shipped; `server/tests/integration/store.rs` upgrades a frozen copy of every
/// released schema and compares it with a fresh database.
struct Migration {
    sql: &'static str,
    after: Option<fn(&Transaction<'_>) -> StoreResult<()>>,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        sql: include_str!("migrations/0001_init.sql"),
        after: None,
    },
    Migration {
        sql: include_str!("migrations/0002_photos_citizens.sql"),
        after: None,
    },
    Migration {
        sql: include_str!("migrations/0003_scores.sql"),
        after: None,
    },
    Migration {
        sql: include_str!("migrations/0004_records.sql"),
        after: None,
    },
    Migration {
        sql: include_str!("migrations/0005_rollups.sql"),
        after: None,
    },
    Migration {
        sql: include_str!("migrations/0006_api_keys.sql"),
        after: None,
    },
    Migration {
        sql: include_str!("migrations/0007_command_centre.sql"),
        after: Some(fill_case_details),
    },
    Migration {
        sql: include_str!("migrations/0008_warnings.sql"),
        after: Some(fill_warnings),
    },
];

/// The schema version this build creates.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;
const READERS: usize = 4;
/// The setting migration 0007's SQL sets (`1`) and its data work clears: still set, it names
/// a database that an older build upgraded without finishing that work.
const REFRESH_CASE_ROWS: &str = "refresh_case_rows";

/// The SQLite backend. See the module docs.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every write runs in a transaction that rolls back on drop, so a poisoned lock is safe.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn open_conn(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // A district's working set (documents touched today, the scope logs) should stay in memory:
    // 64 MiB of page cache per connection and reads through a memory map.
    conn.pragma_update(None, "cache_size", -65_536)?;
    conn.pragma_update_and_check(None, "mmap_size", 1_i64 << 30, |_| Ok(()))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn role_of(code: &str) -> rusqlite::Result<Role> {
    Role::from_code(code).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown role {code:?}").into(),
        )
    })
}

fn insert_audit(conn: &Connection, e: &AuditEntry) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO audit (at, actor, device, action, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![e.at_ms, e.actor, e.device, e.action, e.subject, e.detail])?;
    Ok(())
}

fn require_user(conn: &Connection, user_id: &str) -> StoreResult<()> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM users WHERE id = ?1)",
        [user_id],
        |r| r.get(0),
    )?;
    if exists {
        Ok(())
    } else {
        Err(StoreError::NotFound(user_id.to_owned()))
    }
}

use gridlink_core::day::days_of_period as days;

/// Arguments of a query built clause by clause: each value gets the next `?N`.
#[derive(Default)]
struct Args(Vec<rusqlite::types::Value>);

impl Args {
    fn push(&mut self, v: impl Into<rusqlite::types::Value>) -> String {
        self.0.push(v.into());
        format!("?{}", self.0.len())
    }

    fn list(&mut self, values: &[String]) -> String {
        values
            .iter()
            .map(|v| self.push(v.clone()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The clause keeping rows of `cases` (or of a table with `town_id`, and `village_id` and
/// `grid_id` unless `towns_only`) within an area, as `gridlink_core::sync::visibility` filters
/// them; `None` for the whole district.
fn area_clause(area: &Area, args: &mut Args, towns_only: bool) -> Option<String> {
    let filter = if towns_only {
        area.town_filter()
    } else {
        area.filter()
    };
    let (towns, villages, grids) = match filter {
        PlaceFilter::All => return None,
        PlaceFilter::Nothing => return Some("0".to_owned()),
        PlaceFilter::AnyOf {
            towns,
            villages,
            grids,
        } => (towns, villages, grids),
    };
    let mut any = Vec::new();
    for (column, ids) in [
        ("town_id", towns),
        ("village_id", villages),
        ("grid_id", grids),
    ] {
        if !ids.is_empty() {
            any.push(format!("{column} IN ({})", args.list(ids)));
        }
    }
    Some(format!("({})", any.join(" OR ")))
}

fn case_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CaseRow> {
    Ok(CaseRow {
        id: r.get(0)?,
        place: GridPlace {
            grid_id: r.get(1)?,
            village_id: r.get(2)?,
            town_id: r.get(3)?,
        },
        category: r.get(4)?,
        source: r.get(5)?,
        status: r.get(6)?,
        level: r.get(7)?,
        assignee: r.get(8)?,
        reporter: r.get(9)?,
        title: r.get(10)?,
        reported_at: r.get(11)?,
        updated_at: r.get(12)?,
        due_at: r.get(13)?,
        closed_at: r.get(14)?,
        solved_level: r.get(15)?,
        flagged: r.get(16)?,
        events: r.get(17)?,
        point: match (r.get::<_, Option<f64>>(18)?, r.get::<_, Option<f64>>(19)?) {
            (Some(lat), Some(lon)) => Some(gridlink_core::geo::LatLon::new(lat, lon)),
            _ => None,
        },
        address_id: r.get(20)?,
        description: r.get(21)?,
        warn_at: r.get(22)?,
    })
}

fn blob_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BlobRow> {
    Ok(BlobRow {
        hash: r.get(0)?,
        size: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
        kind: r.get(2)?,
        thumb_of: r.get(3)?,
        device_id: r.get(4)?,
        received_at_ms: r.get(5)?,
    })
}

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        name: r.get(1)?,
        role: role_of(&r.get::<_, String>(2)?)?,
    })
}

/// Brings the database to [`SCHEMA_VERSION`], one transaction per migration.
fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (number, migration) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(found).unwrap_or(0))
    {
        let tx = conn.transaction()?;
        tx.execute_batch(migration.sql)?;
        if let Some(after) = migration.after {
            after(&tx)?;
        }
        tx.pragma_update(None, "user_version", number as i64 + 1)?;
        tx.commit()?;
    }
    // Upgraded to 0007 by an older build that had not finished filling the rows yet.
    let pending: Option<Vec<u8>> = conn
        .query_row(
            "SELECT value FROM settings WHERE key = ?1",
            [REFRESH_CASE_ROWS],
            |r| r.get(0),
        )
        .optional()?;
    if pending.as_deref() == Some(&[1][..]) {
        let tx = conn.transaction()?;
        fill_case_details(&tx)?;
        tx.commit()?;
    }
    Ok(())
}

/// Migration 0007's data work: the location, address and description of case rows written
/// before the case row carried them, from their documents. A document that does not fold
/// keeps its row as it is (it is logged).
fn fill_case_details(tx: &Transaction<'_>) -> StoreResult<()> {
    let started = std::time::Instant::now();
    let ids: Vec<String> = tx
        .prepare("SELECT id FROM cases WHERE lat IS NULL AND description = '' ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut filled = 0usize;
    for id in &ids {
        let Some((bytes, _)) = document_bytes(tx, id)? else {
            continue;
        };
        let details = match gridlink_core::doc::CaseDoc::load(id, &bytes).and_then(|d| d.case()) {
            Ok(case) => case.details,
            Err(e) => {
                tracing::warn!(case = %id, error = %e, "case row not refreshed");
                continue;
            }
        };
        let point = details.location.map(|l| l.point);
        tx.prepare_cached(
            "UPDATE cases SET lat = ?2, lon = ?3, address_id = ?4, description = ?5 WHERE id = ?1",
        )?
        .execute(params![
            id,
            point.map(|p| p.lat),
            point.map(|p| p.lon),
            details.address_id,
            details.description
        ])?;
        filled += 1;
    }
    tx.execute(
        "INSERT INTO settings (key, value) VALUES (?1, X'00')
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [REFRESH_CASE_ROWS],
    )?;
    if filled > 0 {
        tracing::info!(
            cases = filled,
            seconds = started.elapsed().as_secs_f64(),
            "case rows filled from their documents"
        );
    }
    Ok(())
}

/// Migration 0008's data work: the deadlines and warnings of open cases under the stored rules.
fn fill_warnings(tx: &Transaction<'_>) -> StoreResult<()> {
    let stored: Option<Vec<u8>> = tx
        .query_row(
            "SELECT value FROM settings WHERE key = ?1",
            [super::RULES_SETTING],
            |r| r.get(0),
        )
        .optional()?;
    let rules = match stored {
        Some(bytes) => super::rules_from(&bytes)?,
        None => super::DistrictRules::default(),
    };
    let changed = refresh_open_deadlines(tx, &rules.limits)?;
    if changed > 0 {
        tracing::info!(
            cases = changed,
            "deadlines and warnings of open cases filled"
        );
    }
    Ok(())
}

/// Rewrites the deadline and warning of every open case from its document; how many changed.
fn refresh_open_deadlines(
    tx: &Transaction<'_>,
    limits: &gridlink_core::case::TimeLimits,
) -> StoreResult<u64> {
    let open: Vec<(String, Option<i64>, Option<i64>)> = tx
        .prepare(&format!(
            "SELECT id, due_at, warn_at FROM cases WHERE {OPEN_STATUSES} ORDER BY id"
        ))?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut changed = 0;
    for (id, due, warn) in open {
        let Some((bytes, _)) = document_bytes(tx, &id)? else {
            continue;
        };
        let Some(now) = super::deadlines_of(&id, &bytes, limits) else {
            continue;
        };
        if now != (due, warn) {
            tx.prepare_cached("UPDATE cases SET due_at = ?2, warn_at = ?3 WHERE id = ?1")?
                .execute(params![id, now.0, now.1])?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// A stored document's bytes (its base and every change stored after it) and how many chunks
/// of changes it holds. `None` if unknown.
fn document_bytes(conn: &Connection, doc_id: &str) -> StoreResult<Option<(Vec<u8>, u32)>> {
    let Some((mut bytes, base_seq, chunks)) = conn
        .prepare_cached("SELECT base, base_seq, chunks FROM documents WHERE id = ?1")?
        .query_row([doc_id], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, u32>(2)?,
            ))
        })
        .optional()?
    else {
        return Ok(None);
    };
    let mut stmt = conn
        .prepare_cached("SELECT bytes FROM changes WHERE doc_id = ?1 AND seq > ?2 ORDER BY seq")?;
    let mut rows = stmt.query(params![doc_id, base_seq])?;
    while let Some(row) = rows.next()? {
        bytes.extend_from_slice(row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?);
    }
    Ok(Some((bytes, chunks)))
}

impl SqliteStore {
    /// Opens (or creates) the store in `data_dir` and brings its schema up to date.
    pub fn open(data_dir: &Path) -> StoreResult<SqliteStore> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Database(format!("{}: {e}", data_dir.display())))?;
        let path = data_dir.join("gridlink.sqlite");
        let mut writer = open_conn(&path)?;
        migrate(&mut writer)?;
        Ok(SqliteStore {
            path,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        })
    }

    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let conn = match lock(&self.readers).pop() {
            Some(conn) => conn,
            None => open_conn(&self.path)?,
        };
        let out = f(&conn);
        let mut pool = lock(&self.readers);
        if pool.len() < READERS {
            pool.push(conn);
        }
        out
    }

    /// Adds a roll-up delta to the sums (the only arithmetic the backend does).
    fn add_rollups(tx: &Connection, delta: &RollupDelta) -> StoreResult<()> {
        let mut days = tx.prepare_cached(
            "INSERT INTO score_days (unit, day, points, lines) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (unit, day) DO UPDATE SET points = points + excluded.points, lines = lines + excluded.lines",
        )?;
        for ((unit, day), (points, lines)) in &delta.score_days {
            days.execute(params![unit, day, points, lines])?;
        }
        let mut blocks = tx.prepare_cached(
            "INSERT INTO score_blocks (unit, block, points, lines) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (unit, block) DO UPDATE SET points = points + excluded.points, lines = lines + excluded.lines",
        )?;
        for ((unit, block), (points, lines)) in &delta.score_blocks() {
            blocks.execute(params![unit, block, points, lines])?;
        }
        let mut counts = tx.prepare_cached(
            "INSERT INTO case_counts (day, town_id, category, closed, solved_level, n) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (day, town_id, category, closed, solved_level) DO UPDATE SET n = n + excluded.n",
        )?;
        for ((day, town, category, closed, solved), n) in &delta.case_counts {
            counts.execute(params![day, town, category, closed, solved, n])?;
        }
        let mut open = tx.prepare_cached(
            "INSERT INTO open_cases (grid_id, level, n) VALUES (?1, ?2, ?3)
             ON CONFLICT (grid_id, level) DO UPDATE SET n = n + excluded.n",
        )?;
        for ((grid, level), n) in &delta.open_cases {
            open.execute(params![grid, level, n])?;
        }
        Ok(())
    }

    fn write_merge(tx: &Connection, m: &Merge, at: i64) -> StoreResult<()> {
        let known: Option<Vec<u8>> = tx
            .prepare_cached("SELECT heads FROM documents WHERE id = ?1")?
            .query_row([&m.doc_id], |r| r.get(0))
            .optional()?;
        if let Some(base) = &m.base_heads {
            let expected = (!base.is_empty()).then(|| encode_heads(base));
            if known != expected {
                return Err(StoreError::Stale {
                    doc_id: m.doc_id.clone(),
                });
            }
        }
        let heads = encode_heads(&m.heads);
        if known.is_none() {
            tx.prepare_cached(
                "INSERT INTO documents (id, kind, heads, base, base_seq, chunks) VALUES (?1, ?3, ?2, x'', 0, 0)",
            )?
            .execute(params![m.doc_id, heads, DocKind::of(&m.doc_id).code()])?;
        }
        let seq: i64 = tx
            .prepare_cached(
                "INSERT INTO changes (doc_id, device_id, bytes, at) VALUES (?1, ?2, ?3, ?4) RETURNING seq",
            )?
            .query_row(params![m.doc_id, m.device_id, m.changes, at], |r| r.get(0))?;
        match &m.compacted {
            Some(base) => tx
                .prepare_cached("UPDATE documents SET heads = ?2, base = ?3, base_seq = ?4, chunks = 0 WHERE id = ?1")?
                .execute(params![m.doc_id, heads, base, seq])?,
            None => tx
                .prepare_cached("UPDATE documents SET heads = ?2, chunks = chunks + 1 WHERE id = ?1")?
                .execute(params![m.doc_id, heads])?,
        };
        let mut log =
            tx.prepare_cached("INSERT INTO scope_log (scope, change_seq) VALUES (?1, ?2)")?;
        for scope in &m.new_scopes {
            let key = scope.to_string();
            let added = tx
                .prepare_cached(
                    "INSERT INTO doc_scopes (doc_id, scope) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                )?
                .execute(params![m.doc_id, key])?;
            // The document enters this scope: its earlier changes enter the scope's log too,
            // in order, so the scope's devices receive the whole document. (The district's
            // log is the change log itself.)
            if added == 0 || *scope == ScopeKey::District {
                continue;
            }
            let earlier: Vec<i64> = tx
                .prepare_cached(
                    "SELECT seq FROM changes WHERE doc_id = ?1 AND seq < ?2 ORDER BY seq",
                )?
                .query_map(params![m.doc_id, seq], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for s in earlier {
                log.execute(params![key, s])?;
            }
        }
        for scope in m.scopes.iter().filter(|s| **s != ScopeKey::District) {
            log.execute(params![scope.to_string(), seq])?;
        }
        let mut photo = tx.prepare_cached(
            "INSERT INTO case_photos (hash, case_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )?;
        for hash in &m.photos {
            photo.execute(params![hash, m.doc_id])?;
        }
        // The roll-ups: what the case counted for before (its stored row and lines) leaves
        // them and what it counts for now enters them, as `rollups` computes the difference.
        let before_lines: Vec<CountedLine> = tx
            .prepare_cached("SELECT unit, points, at FROM score_lines WHERE case_id = ?1")?
            .query_map([&m.doc_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let before_case: Option<CaseCounted> = match &m.row {
            None => None,
            Some(_) => tx
                .prepare_cached(
                    "SELECT reported_at, town_id, grid_id, category, status, level, solved_level
                     FROM cases WHERE id = ?1",
                )?
                .query_row([&m.doc_id], |r| {
                    Ok(CaseCounted {
                        reported_at: r.get(0)?,
                        town_id: r.get(1)?,
                        grid_id: r.get(2)?,
                        category: r.get(3)?,
                        status: r.get(4)?,
                        level: r.get(5)?,
                        solved_level: r.get(6)?,
                    })
                })
                .optional()?,
        };
        let after_lines: Vec<CountedLine> = m
            .scores
            .iter()
            .map(|l| (l.unit.key(), l.points, l.at_ms))
            .collect();
        let delta = RollupDelta::between(
            before_case.as_ref(),
            &before_lines,
            m.row.as_ref().map(CaseCounted::of).as_ref(),
            &after_lines,
        );
        Self::add_rollups(tx, &delta)?;
        tx.prepare_cached("DELETE FROM score_lines WHERE case_id = ?1")?
            .execute([&m.doc_id])?;
        let mut line = tx.prepare_cached(
            "INSERT INTO score_lines (case_id, unit, points, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for l in &m.scores {
            line.execute(params![
                m.doc_id,
                l.unit.key(),
                l.points,
                reason_code(l.reason),
                l.at_ms
            ])?;
        }
        if let Some(r) = &m.record {
            tx.prepare_cached(
                "INSERT INTO records (doc_id, kind, grid_id, subject, actor, started_at, done_at, updated_at, title)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (doc_id) DO UPDATE SET grid_id = excluded.grid_id, subject = excluded.subject,
                    title = excluded.title,
                    actor = excluded.actor, started_at = excluded.started_at, done_at = excluded.done_at,
                    updated_at = excluded.updated_at",
            )?
            .execute(params![
                m.doc_id,
                r.kind.code(),
                r.grid_id,
                r.subject,
                r.actor,
                r.started_at_ms,
                r.done_at_ms,
                r.updated_at_ms,
                r.title
            ])?;
        }
        let Some(r) = &m.row else {
            return Ok(());
        };
        tx.prepare_cached(
            "INSERT INTO cases (id, grid_id, village_id, town_id, category, source, status, level, assignee,
                                reporter, title, reported_at, updated_at, due_at, closed_at, solved_level, flagged, events,
                                lat, lon, address_id, description, warn_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)
             ON CONFLICT (id) DO UPDATE SET
                grid_id = excluded.grid_id, village_id = excluded.village_id, town_id = excluded.town_id,
                category = excluded.category, source = excluded.source, status = excluded.status,
                level = excluded.level, assignee = excluded.assignee, reporter = excluded.reporter,
                title = excluded.title, reported_at = excluded.reported_at, updated_at = excluded.updated_at,
                due_at = excluded.due_at, closed_at = excluded.closed_at, solved_level = excluded.solved_level,
                flagged = excluded.flagged, events = excluded.events, lat = excluded.lat, lon = excluded.lon,
                address_id = excluded.address_id, description = excluded.description,
                warn_at = excluded.warn_at",
        )?
        .execute(params![
            r.id,
            r.place.grid_id,
            r.place.village_id,
            r.place.town_id,
            r.category,
            r.source,
            r.status,
            r.level,
            r.assignee,
            r.reporter,
            r.title,
            r.reported_at,
            r.updated_at,
            r.due_at,
            r.closed_at,
            r.solved_level,
            r.flagged,
            r.events,
            r.point.map(|p| p.lat),
            r.point.map(|p| p.lon),
            r.address_id,
            r.description,
            r.warn_at
        ])?;
        Ok(())
    }
}

impl DocumentStore for SqliteStore {
    fn load_doc(&self, doc_id: &str) -> StoreResult<Option<StoredDoc>> {
        // Through the writer: the merge layer must see its own last commit.
        let conn = lock(&self.writer);
        let Some((bytes, chunks)) = document_bytes(&conn, doc_id)? else {
            return Ok(None);
        };
        let scopes: Vec<String> = conn
            .prepare_cached("SELECT scope FROM doc_scopes WHERE doc_id = ?1")?
            .query_map([doc_id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(Some(StoredDoc {
            bytes,
            scopes: parse_scopes(scopes),
            chunks,
        }))
    }

    fn commit(&self, merges: &[Merge], audit: &[AuditEntry]) -> StoreResult<()> {
        let mut conn = lock(&self.writer);
        // The write lock first, then the heads: what `write_merge` compares is what is
        // stored, even with another process writing the same file.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let at = now_ms();
        for m in merges {
            Self::write_merge(&tx, m, at)?;
        }
        for e in audit {
            insert_audit(&tx, e)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn pull(
        &self,
        from: &[(ScopeKey, u64)],
        exclude_device: &str,
        max_bytes: u64,
    ) -> StoreResult<PullPage> {
        self.with_reader(|conn| {
            // One read transaction: every scope is read from the same snapshot.
            conn.execute_batch("BEGIN")?;
            let out = pull_in(conn, from, exclude_device, max_bytes);
            conn.execute_batch("COMMIT")?;
            out
        })
    }

    fn docs_leaving(&self, left: &[ScopeKey], kept: &[ScopeKey]) -> StoreResult<Vec<String>> {
        if left.is_empty() {
            return Ok(Vec::new());
        }
        self.with_reader(|conn| {
            let kept: HashSet<String> = kept.iter().map(ToString::to_string).collect();
            let mut out = BTreeSet::new();
            let mut docs = conn.prepare_cached("SELECT doc_id FROM doc_scopes WHERE scope = ?1")?;
            let mut scopes_of =
                conn.prepare_cached("SELECT scope FROM doc_scopes WHERE doc_id = ?1")?;
            for key in left {
                let ids: Vec<String> = docs
                    .query_map([key.to_string()], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                for id in ids {
                    let scopes: Vec<String> = scopes_of
                        .query_map([&id], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()?;
                    if !scopes.iter().any(|s| kept.contains(s)) {
                        out.insert(id);
                    }
                }
            }
            Ok(out.into_iter().collect())
        })
    }

    fn doc_count(&self) -> StoreResult<u64> {
        self.with_reader(|conn| {
            let n: i64 = conn.query_row("SELECT COUNT(*) FROM documents", [], |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    fn change_seq(&self) -> StoreResult<i64> {
        self.with_reader(|conn| {
            Ok(conn
                .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM changes")?
                .query_row([], |r| r.get(0))?)
        })
    }

    fn refresh_deadlines(&self, limits: &gridlink_core::case::TimeLimits) -> StoreResult<u64> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let changed = refresh_open_deadlines(&tx, limits)?;
        tx.commit()?;
        Ok(changed)
    }
}

impl Directory for SqliteStore {
    fn add_user(&self, user: &User, by: &str) -> StoreResult<()> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let added = tx.execute(
            "INSERT INTO users (id, name, role, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (id) DO NOTHING",
            params![user.id, user.name, user.role.code(), now_ms()],
        )?;
        if added == 0 {
            return Err(StoreError::Conflict(format!(
                "用户 {} 已存在 / user {} already exists",
                user.id, user.id
            )));
        }
        insert_audit(
            &tx,
            &admin(
                by,
                "user_add",
                &user.id,
                format!("{} {}", user.name, user.role.code()),
            ),
        )?;
        tx.commit()?;
        Ok(())
    }

    fn user(&self, id: &str) -> StoreResult<Option<User>> {
        self.with_reader(|conn| {
            Ok(conn
                .prepare_cached("SELECT id, name, role FROM users WHERE id = ?1")?
                .query_row([id], user_row)
                .optional()?)
        })
    }

    fn grant(&self, user_id: &str, scope: &ScopeKey, by: &str) -> StoreResult<()> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        require_user(&tx, user_id)?;
        tx.execute(
            "INSERT INTO grants (user_id, scope, granted_at, granted_by) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (user_id, scope) DO NOTHING",
            params![user_id, scope.to_string(), now_ms(), by],
        )?;
        // Granted again: no longer among the withdrawn.
        tx.execute(
            "DELETE FROM revoked_grants WHERE user_id = ?1 AND scope = ?2",
            params![user_id, scope.to_string()],
        )?;
        insert_audit(&tx, &admin(by, "grant", user_id, scope.to_string()))?;
        tx.commit()?;
        Ok(())
    }

    fn revoke_grant(&self, user_id: &str, scope: &ScopeKey, by: &str) -> StoreResult<bool> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let n = tx.execute(
            "DELETE FROM grants WHERE user_id = ?1 AND scope = ?2",
            params![user_id, scope.to_string()],
        )?;
        if n > 0 {
            tx.execute(
                "INSERT INTO revoked_grants (user_id, scope, revoked_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (user_id, scope) DO UPDATE SET revoked_at = excluded.revoked_at",
                params![user_id, scope.to_string(), now_ms()],
            )?;
        }
        insert_audit(&tx, &admin(by, "revoke_grant", user_id, scope.to_string()))?;
        tx.commit()?;
        Ok(n > 0)
    }

    fn revoked_grants(&self, user_id: &str) -> StoreResult<BTreeSet<ScopeKey>> {
        self.with_reader(|conn| {
            let rows: Vec<String> = conn
                .prepare_cached("SELECT scope FROM revoked_grants WHERE user_id = ?1")?
                .query_map([user_id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(parse_scopes(rows))
        })
    }

    fn grants(&self, user_id: &str) -> StoreResult<BTreeSet<ScopeKey>> {
        self.with_reader(|conn| {
            let rows: Vec<String> = conn
                .prepare_cached("SELECT scope FROM grants WHERE user_id = ?1")?
                .query_map([user_id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(parse_scopes(rows))
        })
    }

    fn add_enroll_code(
        &self,
        user_id: &str,
        code_hash: &str,
        expires_at_ms: i64,
        by: &str,
    ) -> StoreResult<()> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        require_user(&tx, user_id)?;
        tx.execute(
            "INSERT INTO enroll_codes (code_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![code_hash, user_id, now_ms(), expires_at_ms],
        )?;
        insert_audit(
            &tx,
            &admin(
                by,
                "enroll_code",
                user_id,
                format!("expires {expires_at_ms}"),
            ),
        )?;
        tx.commit()?;
        Ok(())
    }

    fn enroll(&self, code_hash: &str, device: &NewDevice, now: i64) -> StoreResult<User> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let user_id: Option<String> = tx
            .query_row(
                "UPDATE enroll_codes SET used_at = ?2, device_id = ?3
                 WHERE code_hash = ?1 AND used_at IS NULL AND expires_at > ?2 RETURNING user_id",
                params![code_hash, now, device.id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(user_id) = user_id else {
            return Err(StoreError::NotFound("enrollment code".into()));
        };
        // A phone that enrolls again (new user, reinstalled app) replaces its old registration;
        // the new token and actor prefix make the old ones worthless.
        let registered = tx.execute(
            "INSERT INTO devices (id, user_id, name, token_hash, actor_prefix, enrolled_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, name = excluded.name,
                token_hash = excluded.token_hash, actor_prefix = excluded.actor_prefix,
                enrolled_at = excluded.enrolled_at, revoked_at = NULL
             WHERE devices.user_id = excluded.user_id OR devices.revoked_at IS NOT NULL",
            params![device.id, user_id, device.name, device.token_hash, device.actor_prefix, now],
        )?;
        if registered == 0 {
            // Another user's active device: taking its id over would lock that phone out.
            // (The transaction rolls back, so the code stays unused.)
            return Err(StoreError::Conflict(format!(
                "设备 {} 已登记给其他用户，请先由管理员停用 / device {} is enrolled for another user; an operator must revoke it first",
                device.id, device.id
            )));
        }
        let user = tx.query_row(
            "SELECT id, name, role FROM users WHERE id = ?1",
            [&user_id],
            user_row,
        )?;
        insert_audit(
            &tx,
            &AuditEntry {
                at_ms: now,
                actor: user.id.clone(),
                device: Some(device.id.clone()),
                action: "enroll".into(),
                subject: device.id.clone(),
                detail: device.name.clone(),
            },
        )?;
        tx.commit()?;
        Ok(user)
    }

    fn device_by_token(&self, token_hash: &str) -> StoreResult<Option<DeviceAuth>> {
        self.with_reader(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT d.id, d.actor_prefix, u.id, u.name, u.role FROM devices d JOIN users u ON u.id = d.user_id
                     WHERE d.token_hash = ?1 AND d.revoked_at IS NULL",
                )?
                .query_row([token_hash], |r| {
                    Ok(DeviceAuth {
                        device_id: r.get(0)?,
                        actor_prefix: r.get(1)?,
                        user: User {
                            id: r.get(2)?,
                            name: r.get(3)?,
                            role: role_of(&r.get::<_, String>(4)?)?,
                        },
                    })
                })
                .optional()?)
        })
    }

    fn revoke_device(&self, device_id: &str, by: &str) -> StoreResult<bool> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let n = tx.execute(
            "UPDATE devices SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![device_id, now_ms()],
        )?;
        insert_audit(&tx, &admin(by, "revoke_device", device_id, String::new()))?;
        tx.commit()?;
        Ok(n > 0)
    }

    fn put_grids(&self, grids: &[GridPlace]) -> StoreResult<()> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare(
                "INSERT INTO grids (id, village_id, town_id) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET village_id = excluded.village_id, town_id = excluded.town_id",
            )?;
            for g in grids {
                stmt.execute(params![g.grid_id, g.village_id, g.town_id])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn grids(&self) -> StoreResult<Vec<GridPlace>> {
        self.with_reader(|conn| {
            let rows = conn
                .prepare("SELECT id, village_id, town_id FROM grids ORDER BY id")?
                .query_map([], |r| {
                    Ok(GridPlace {
                        grid_id: r.get(0)?,
                        village_id: r.get(1)?,
                        town_id: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
    }

    fn register_citizen(
        &self,
        citizen: &Citizen,
        device: &NewDevice,
        max_per_phone: u32,
    ) -> StoreResult<()> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        if let Some(phone) = &citizen.phone_hash {
            let n: i64 = tx.query_row(
                "SELECT COUNT(*) FROM citizens WHERE phone_hash = ?1",
                [phone],
                |r| r.get(0),
            )?;
            if n >= i64::from(max_per_phone) {
                return Err(StoreError::Conflict(
                    "该手机号注册次数过多 / this phone number has too many registrations".into(),
                ));
            }
        }
        let taken: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM devices WHERE id = ?1)",
            [&device.id],
            |r| r.get(0),
        )?;
        if taken {
            return Err(StoreError::Conflict(format!(
                "设备 {} 已注册 / device {} is already registered",
                device.id, device.id
            )));
        }
        let at = citizen.registered_at_ms;
        tx.execute(
            "INSERT INTO users (id, name, role, created_at) VALUES (?1, ?2, 'citizen', ?3)",
            params![
                citizen.user_id,
                citizen.name.clone().unwrap_or_default(),
                at
            ],
        )?;
        tx.execute(
            "INSERT INTO citizens (user_id, name, phone_hash, phone_masked, registered_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                citizen.user_id,
                citizen.name,
                citizen.phone_hash,
                citizen.phone_masked,
                at
            ],
        )?;
        tx.execute(
            "INSERT INTO devices (id, user_id, name, token_hash, actor_prefix, enrolled_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                device.id,
                citizen.user_id,
                device.name,
                device.token_hash,
                device.actor_prefix,
                at
            ],
        )?;
        insert_audit(
            &tx,
            &AuditEntry {
                at_ms: at,
                actor: citizen.user_id.clone(),
                device: Some(device.id.clone()),
                action: "citizen_register".into(),
                subject: citizen.user_id.clone(),
                detail: String::new(),
            },
        )?;
        tx.commit()?;
        Ok(())
    }

    fn citizen(&self, user_id: &str) -> StoreResult<Option<Citizen>> {
        self.with_reader(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT user_id, name, phone_hash, phone_masked, registered_at FROM citizens WHERE user_id = ?1",
                )?
                .query_row([user_id], |r| {
                    Ok(Citizen {
                        user_id: r.get(0)?,
                        name: r.get(1)?,
                        phone_hash: r.get(2)?,
                        phone_masked: r.get(3)?,
                        registered_at_ms: r.get(4)?,
                    })
                })
                .optional()?)
        })
    }

    fn set_web_password(&self, user_id: &str, hash: &str, by: &str) -> StoreResult<()> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        require_user(&tx, user_id)?;
        tx.execute(
            "INSERT INTO web_passwords (user_id, hash, set_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (user_id) DO UPDATE SET hash = excluded.hash, set_at = excluded.set_at",
            params![user_id, hash, now_ms()],
        )?;
        // A new password signs the user out everywhere.
        tx.execute("DELETE FROM web_sessions WHERE user_id = ?1", [user_id])?;
        insert_audit(&tx, &admin(by, "web_password", user_id, String::new()))?;
        tx.commit()?;
        Ok(())
    }

    fn web_password(&self, user_id: &str) -> StoreResult<Option<String>> {
        self.with_reader(|conn| {
            Ok(conn
                .prepare_cached("SELECT hash FROM web_passwords WHERE user_id = ?1")?
                .query_row([user_id], |r| r.get(0))
                .optional()?)
        })
    }

    fn add_web_session(&self, session: &WebSession) -> StoreResult<()> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM web_sessions WHERE expires_at <= ?1",
            [session.created_at],
        )?;
        tx.execute(
            "INSERT INTO web_sessions (token_hash, user_id, csrf, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                session.token_hash,
                session.user_id,
                session.csrf,
                session.created_at,
                session.expires_at
            ],
        )?;
        insert_audit(
            &tx,
            &admin(
                &session.user_id,
                "web_sign_in",
                &session.user_id,
                String::new(),
            ),
        )?;
        tx.commit()?;
        Ok(())
    }

    fn web_session(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> StoreResult<Option<(WebSession, User)>> {
        self.with_reader(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT s.token_hash, s.user_id, s.csrf, s.created_at, s.expires_at, u.id, u.name, u.role
                     FROM web_sessions s JOIN users u ON u.id = s.user_id
                     WHERE s.token_hash = ?1 AND s.expires_at > ?2",
                )?
                .query_row(params![token_hash, now_ms], |r| {
                    Ok((
                        WebSession {
                            token_hash: r.get(0)?,
                            user_id: r.get(1)?,
                            csrf: r.get(2)?,
                            created_at: r.get(3)?,
                            expires_at: r.get(4)?,
                        },
                        User {
                            id: r.get(5)?,
                            name: r.get(6)?,
                            role: role_of(&r.get::<_, String>(7)?)?,
                        },
                    ))
                })
                .optional()?)
        })
    }

    fn end_web_session(&self, token_hash: &str) -> StoreResult<()> {
        lock(&self.writer).execute(
            "DELETE FROM web_sessions WHERE token_hash = ?1",
            [token_hash],
        )?;
        Ok(())
    }

    fn web_device(&self, user_id: &str, actor_prefix: &[u8]) -> StoreResult<DeviceAuth> {
        let device_id = format!("web-{user_id}");
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        require_user(&tx, user_id)?;
        // The token column holds a value no token hashes to (hashes are 64 hex digits).
        tx.execute(
            "INSERT INTO devices (id, user_id, name, token_hash, actor_prefix, enrolled_at)
             VALUES (?1, ?2, '指挥中心网页 / command centre web', ?3, ?4, ?5)
             ON CONFLICT (id) DO NOTHING",
            params![
                device_id,
                user_id,
                format!("web:{device_id}"),
                actor_prefix,
                now_ms()
            ],
        )?;
        let device = tx.query_row(
            "SELECT d.id, d.actor_prefix, u.id, u.name, u.role FROM devices d JOIN users u ON u.id = d.user_id
             WHERE d.id = ?1 AND d.user_id = ?2 AND d.revoked_at IS NULL",
            params![device_id, user_id],
            |r| {
                Ok(DeviceAuth {
                    device_id: r.get(0)?,
                    actor_prefix: r.get(1)?,
                    user: User {
                        id: r.get(2)?,
                        name: r.get(3)?,
                        role: role_of(&r.get::<_, String>(4)?)?,
                    },
                })
            },
        )
            .optional()?
            .ok_or_else(|| {
                StoreError::Conflict(format!(
                    "{device_id} 已停用 / the web device {device_id} was revoked"
                ))
            })?;
        tx.commit()?;
        Ok(device)
    }
    fn add_api_key(&self, key_hash: &str, key: &ApiKey, by: &str) -> StoreResult<()> {
        let writer = lock(&self.writer);
        writer.execute(
            "INSERT INTO api_keys (key_hash, name, scope, created_at, created_by, revoked_at)
             VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
            params![
                key_hash,
                key.name,
                key.scope.to_string(),
                key.created_at,
                by
            ],
        )?;
        writer.execute(
            "INSERT INTO audit (at, actor, device, action, subject, detail)
             VALUES (?1, ?2, NULL, 'api_key', ?3, ?4)",
            params![key.created_at, by, key.name, key.scope.to_string()],
        )?;
        Ok(())
    }

    fn api_key(&self, key_hash: &str) -> StoreResult<Option<ApiKey>> {
        self.with_reader(|conn| {
            let row: Option<(String, String, i64, Option<i64>)> = conn
                .prepare_cached(
                    "SELECT name, scope, created_at, revoked_at FROM api_keys WHERE key_hash = ?1",
                )?
                .query_row([key_hash], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()?;
            let Some((name, scope, created_at, revoked_at)) = row else {
                return Ok(None);
            };
            let scope = scope
                .parse()
                .map_err(|_| StoreError::Database(format!("api key scope {scope:?}")))?;
            Ok(Some(ApiKey {
                name,
                scope,
                created_at,
                revoked: revoked_at.is_some(),
            }))
        })
    }
}

impl CaseQueries for SqliteStore {
    fn case_row(&self, id: &str) -> StoreResult<Option<CaseRow>> {
        self.with_reader(|conn| {
            Ok(conn
                .prepare_cached(&format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = ?1"))?
                .query_row([id], case_row)
                .optional()?)
        })
    }

    fn reported_by(&self, user_id: &str, limit: u32) -> StoreResult<Vec<CaseRow>> {
        self.with_reader(|conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {CASE_COLUMNS} FROM cases WHERE reporter = ?1
                     ORDER BY reported_at DESC, id LIMIT ?2"
                ))?
                .query_map(params![user_id, limit], case_row)?
                .collect::<rusqlite::Result<_>>()?)
        })
    }

    fn overdue_cases(
        &self,
        now_ms: i64,
        scopes: Option<&BTreeSet<ScopeKey>>,
        limit: u32,
    ) -> StoreResult<Vec<CaseRow>> {
        let open = format!("due_at IS NOT NULL AND due_at < ?1 AND {OPEN_STATUSES}");
        self.with_reader(|conn| {
            let rows = match scopes.filter(|s| !s.contains(&ScopeKey::District)) {
                None => conn
                    .prepare_cached(&format!(
                        "SELECT {CASE_COLUMNS} FROM cases WHERE {open} ORDER BY due_at, id LIMIT ?2"
                    ))?
                    .query_map(params![now_ms, limit], case_row)?
                    .collect::<rusqlite::Result<_>>()?,
                Some(scopes) => {
                    let keys: Vec<String> = scopes.iter().map(ToString::to_string).collect();
                    let marks = (3..3 + keys.len())
                        .map(|n| format!("?{n}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let mut args: Vec<rusqlite::types::Value> =
                        vec![now_ms.into(), i64::from(limit).into()];
                    args.extend(keys.into_iter().map(rusqlite::types::Value::from));
                    conn.prepare(&format!(
                        "SELECT {CASE_COLUMNS} FROM cases WHERE {open}
                           AND id IN (SELECT doc_id FROM doc_scopes WHERE scope IN ({marks}))
                         ORDER BY due_at, id LIMIT ?2"
                    ))?
                    .query_map(rusqlite::params_from_iter(args), case_row)?
                    .collect::<rusqlite::Result<_>>()?
                }
            };
            Ok(rows)
        })
    }

    fn record_ids(&self, kind: &str) -> StoreResult<Vec<String>> {
        self.with_reader(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT doc_id FROM records WHERE kind = ?1 ORDER BY doc_id")?;
            let ids = stmt.query_map([kind], |r| r.get(0))?;
            Ok(ids.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn coverage(&self, grid_id: &str) -> StoreResult<Vec<CoverageRow>> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT a.subject, a.title,
                        (SELECT MAX(v.done_at) FROM records v
                         WHERE v.kind = 'visit' AND v.subject = a.subject AND v.grid_id = a.grid_id
                       AND v.done_at IS NOT NULL)
                 FROM records a WHERE a.kind = 'address' AND a.grid_id = ?1 ORDER BY a.subject",
            )?;
            let rows = stmt.query_map([grid_id], |r| {
                Ok(CoverageRow {
                    code: r.get(0)?,
                    text: r.get(1)?,
                    last_visit_ms: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn case_list(&self, filter: &CaseFilter) -> StoreResult<Vec<CaseRow>> {
        let mut args = Args::default();
        let clauses = case_clauses(filter, &mut args);
        let limit = args.push(i64::from(filter.limit));
        let offset = args.push(i64::from(filter.offset));
        let where_ = where_of(&clauses);
        let sql = format!(
            "SELECT {CASE_COLUMNS} FROM cases {where_} ORDER BY {} LIMIT {limit} OFFSET {offset}",
            filter.order.sql()
        );
        self.with_reader(|conn| {
            Ok(conn
                .prepare_cached(&sql)?
                .query_map(rusqlite::params_from_iter(args.0), case_row)?
                .collect::<rusqlite::Result<_>>()?)
        })
    }

    fn case_total(&self, filter: &CaseFilter) -> StoreResult<u64> {
        let mut args = Args::default();
        let clauses = case_clauses(filter, &mut args);
        let sql = format!("SELECT COUNT(*) FROM cases {}", where_of(&clauses));
        self.with_reader(|conn| {
            let n: i64 = conn
                .prepare_cached(&sql)?
                .query_row(rusqlite::params_from_iter(args.0), |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }
}

/// The `WHERE` of a case list: `clauses` joined, or nothing.
fn where_of(clauses: &[String]) -> String {
    if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    }
}

/// The conditions a case filter puts on the case rows (its area first), with their arguments.
fn case_clauses(filter: &CaseFilter, args: &mut Args) -> Vec<String> {
    let mut clauses: Vec<String> = Vec::new();
    clauses.extend(area_clause(&filter.area, args, false));
    for (column, values) in [
        ("id", &filter.ids),
        ("status", &filter.statuses),
        ("category", &filter.categories),
    ] {
        if !values.is_empty() {
            clauses.push(format!("{column} IN ({})", args.list(values)));
        }
    }
    for (column, value) in [
        ("level", &filter.level),
        ("source", &filter.source),
        ("town_id", &filter.town_id),
        ("grid_id", &filter.grid_id),
    ] {
        if let Some(v) = value {
            clauses.push(format!("{column} = {}", args.push(v.clone())));
        }
    }
    if let Some(now) = filter.overdue_at {
        clauses.push(format!(
            "{OPEN_STATUSES} AND due_at IS NOT NULL AND due_at < {}",
            args.push(now)
        ));
    }
    if let Some(now) = filter.warning_at {
        let (warned, due) = (args.push(now), args.push(now));
        clauses.push(format!(
            "{OPEN_STATUSES} AND warn_at IS NOT NULL AND warn_at <= {warned} AND due_at >= {due}"
        ));
    }
    if let Some(from) = filter.from_ms {
        clauses.push(format!("reported_at >= {}", args.push(from)));
    }
    if let Some(to) = filter.to_ms {
        clauses.push(format!("reported_at < {}", args.push(to)));
    }
    if let Some(text) = filter.text.as_deref().filter(|t| !t.trim().is_empty()) {
        if let Some((low, high)) = super::number_prefix(text) {
            let (low, high) = (args.push(low), args.push(high));
            clauses.push(format!("id >= {low} AND id < {high}"));
        } else {
            let pattern = args.push(super::like_anywhere(text));
            clauses.push(format!(
                "(id LIKE {pattern} ESCAPE '\\' OR title LIKE {pattern} ESCAPE '\\' \
                 OR description LIKE {pattern} ESCAPE '\\' \
                 OR COALESCE(address_id, '') LIKE {pattern} ESCAPE '\\' \
                 OR COALESCE(reporter, '') LIKE {pattern} ESCAPE '\\')"
            ));
        }
    }
    clauses
}

impl Statistics for SqliteStore {
    fn score_totals(&self, from_ms: i64, to_ms: i64) -> StoreResult<Vec<ScoreTotal>> {
        let (first, end) = days(from_ms, to_ms);
        // Whole 30-day blocks from score_blocks, the days at either edge from score_days.
        let (b0, b1) = (first.saturating_add(29).div_euclid(30), end.div_euclid(30));
        let (head_end, tail_start, b1) = if b0 < b1 {
            (b0 * 30, b1 * 30, b1)
        } else {
            (end, end, b0)
        };
        self.with_reader(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT unit, SUM(points), SUM(lines) FROM (
                         SELECT unit, points, lines FROM score_days
                         WHERE (day >= ?1 AND day < ?2) OR (day >= ?3 AND day < ?4)
                         UNION ALL
                         SELECT unit, points, lines FROM score_blocks WHERE block >= ?5 AND block < ?6
                     ) GROUP BY unit HAVING SUM(lines) > 0 ORDER BY unit",
                )?
                .query_map(params![first, head_end, tail_start, end, b0, b1], |r| {
                    Ok(ScoreTotal {
                        unit: r.get(0)?,
                        points: r.get(1)?,
                        lines: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                    })
                })?
                .collect::<rusqlite::Result<_>>()?)
        })
    }

    fn case_counts(&self, from_ms: i64, to_ms: i64, area: &Area) -> StoreResult<Vec<CaseCount>> {
        let (first, end) = days(from_ms, to_ms);
        let mut args = Args::default();
        let mut clauses = vec![format!(
            "day >= {} AND day < {}",
            args.push(first),
            args.push(end)
        )];
        // Counts are kept per town: an area narrower than a town sees none of them here.
        clauses.extend(area_clause(area, &mut args, true));
        let sql = format!(
            "SELECT day, town_id, category, closed, NULLIF(solved_level, ''), n FROM case_counts
             WHERE {} AND n > 0",
            clauses.join(" AND ")
        );
        self.with_reader(|conn| {
            Ok(conn
                .prepare_cached(&sql)?
                .query_map(rusqlite::params_from_iter(args.0), |r| {
                    Ok(CaseCount {
                        day: r.get(0)?,
                        town_id: r.get(1)?,
                        category: r.get(2)?,
                        closed: r.get(3)?,
                        solved_level: r.get(4)?,
                        n: u64::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
                    })
                })?
                .collect::<rusqlite::Result<_>>()?)
        })
    }

    fn open_by_grid(&self) -> StoreResult<Vec<(String, u64)>> {
        self.with_reader(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT grid_id, SUM(n) FROM open_cases GROUP BY grid_id HAVING SUM(n) > 0",
                )?
                .query_map([], |r| {
                    Ok((r.get(0)?, u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0)))
                })?
                .collect::<rusqlite::Result<_>>()?)
        })
    }

    fn open_by_level(&self, area: &Area) -> StoreResult<Vec<(String, u64)>> {
        let mut args = Args::default();
        let within = area_clause(area, &mut args, false)
            .map(|c| format!("WHERE {c}"))
            .unwrap_or_default();
        let sql = format!(
            "SELECT level, SUM(n) FROM (
                 SELECT o.level, o.n, g.id AS grid_id, g.village_id, g.town_id
                 FROM open_cases o JOIN grids g ON g.id = o.grid_id)
             {within} GROUP BY level HAVING SUM(n) > 0"
        );
        self.with_reader(|conn| {
            Ok(conn
                .prepare_cached(&sql)?
                .query_map(rusqlite::params_from_iter(args.0), |r| {
                    Ok((r.get(0)?, u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0)))
                })?
                .collect::<rusqlite::Result<_>>()?)
        })
    }

    fn overdue_count(&self, now_ms: i64, area: &Area) -> StoreResult<u64> {
        let mut args = Args::default();
        let mut clauses = vec![format!(
            "{OPEN_STATUSES} AND due_at IS NOT NULL AND due_at < {}",
            args.push(now_ms)
        )];
        clauses.extend(area_clause(area, &mut args, false));
        // The planner would rather walk the status index and read every open row.
        let sql = format!(
            "SELECT COUNT(*) FROM cases INDEXED BY cases_open_due WHERE {}",
            clauses.join(" AND ")
        );
        self.with_reader(|conn| {
            let n: i64 = conn
                .prepare_cached(&sql)?
                .query_row(rusqlite::params_from_iter(args.0), |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    fn warning_count(&self, now_ms: i64, area: &Area) -> StoreResult<u64> {
        let mut args = Args::default();
        let (warned, due) = (args.push(now_ms), args.push(now_ms));
        let mut clauses = vec![format!(
            "{OPEN_STATUSES} AND warn_at IS NOT NULL AND warn_at <= {warned} AND due_at >= {due}"
        )];
        clauses.extend(area_clause(area, &mut args, false));
        let sql = format!(
            "SELECT COUNT(*) FROM cases INDEXED BY cases_open_warn WHERE {}",
            clauses.join(" AND ")
        );
        self.with_reader(|conn| {
            let n: i64 = conn
                .prepare_cached(&sql)?
                .query_row(rusqlite::params_from_iter(args.0), |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }
}

impl BlobIndex for SqliteStore {
    fn photo_owner(&self, hash: &str) -> StoreResult<Option<PhotoCase>> {
        self.with_reader(|conn| {
            // The first reference is the owner (`case_photos` rows are only ever added, so
            // the lowest rowid is the first): a case, or a record (visit, mediation file).
            let owner: Option<(String, Option<String>)> = conn
                .prepare_cached(
                    "SELECT p.case_id, c.reporter FROM case_photos p LEFT JOIN cases c ON c.id = p.case_id
                     WHERE p.hash = ?1 ORDER BY p.rowid LIMIT 1",
                )?
                .query_row([hash], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((case_id, reporter)) = owner else {
                return Ok(None);
            };
            let scopes = parse_scopes(
                conn.prepare_cached("SELECT scope FROM doc_scopes WHERE doc_id = ?1")?
                    .query_map([&case_id], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            );
            Ok(Some(PhotoCase {
                case_id,
                scopes,
                reporter,
            }))
        })
    }

    fn blob(&self, hash: &str) -> StoreResult<Option<BlobRow>> {
        self.with_reader(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT hash, size, kind, thumb_of, device_id, received_at FROM blobs WHERE hash = ?1",
                )?
                .query_row([hash], blob_row)
                .optional()?)
        })
    }

    fn put_blob(&self, blob: &BlobRow) -> StoreResult<()> {
        lock(&self.writer).execute(
            "INSERT INTO blobs (hash, size, kind, thumb_of, device_id, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (hash) DO NOTHING",
            params![
                blob.hash,
                i64::try_from(blob.size).unwrap_or(i64::MAX),
                blob.kind,
                blob.thumb_of,
                blob.device_id,
                blob.received_at_ms
            ],
        )?;
        Ok(())
    }

    fn thumbnail_of(&self, photo_hash: &str) -> StoreResult<Option<BlobRow>> {
        self.with_reader(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT hash, size, kind, thumb_of, device_id, received_at FROM blobs
                     WHERE thumb_of = ?1 ORDER BY received_at LIMIT 1",
                )?
                .query_row([photo_hash], blob_row)
                .optional()?)
        })
    }
}

impl SettingsAudit for SqliteStore {
    fn audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        let conn = lock(&self.writer);
        insert_audit(&conn, entry)
    }

    fn audit_log(&self, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        self.with_reader(|conn| {
            let rows = conn
                .prepare_cached("SELECT at, actor, device, action, subject, detail FROM audit ORDER BY id DESC LIMIT ?1")?
                .query_map([limit], |r| {
                    Ok(AuditEntry {
                        at_ms: r.get(0)?,
                        actor: r.get(1)?,
                        device: r.get(2)?,
                        action: r.get(3)?,
                        subject: r.get(4)?,
                        detail: r.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
    }

    fn setting(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.with_reader(|conn| {
            Ok(conn
                .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                    r.get(0)
                })
                .optional()?)
        })
    }

    fn put_setting(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        lock(&self.writer).execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }
}

/// Reads a pull page (the rules are `sql::PageReader`'s).
fn pull_in(
    conn: &Connection,
    from: &[(ScopeKey, u64)],
    exclude_device: &str,
    max_bytes: u64,
) -> StoreResult<PullPage> {
    const BATCH: i64 = 512;
    let mut reader = PageReader::new(exclude_device, max_bytes);
    let mut scoped = conn.prepare_cached(
        "SELECT l.pos, c.seq, c.doc_id, c.device_id, c.bytes FROM scope_log l JOIN changes c ON c.seq = l.change_seq
         WHERE l.scope = ?1 AND l.pos > ?2 ORDER BY l.pos LIMIT ?3",
    )?;
    // Every document is in the district: its log is the change log, positions are sequence numbers.
    let mut district = conn.prepare_cached(
        "SELECT seq, seq, doc_id, device_id, bytes FROM changes WHERE ?1 = 'district' AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    for (key, start) in from {
        let mut pos = i64::try_from(*start).unwrap_or(i64::MAX);
        if reader.is_full() {
            reader.reached(key, pos);
            continue;
        }
        let stmt = if *key == ScopeKey::District {
            &mut district
        } else {
            &mut scoped
        };
        'scope: loop {
            let rows: Vec<(i64, i64, String, String, Vec<u8>)> = stmt
                .query_map(params![key.to_string(), pos, BATCH], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let full = rows.len() as i64 == BATCH;
            for (p, seq, doc_id, device, bytes) in rows {
                if !reader.take(*start, seq, doc_id, &device, bytes) {
                    break 'scope;
                }
                pos = p;
            }
            if !full {
                break;
            }
        }
        reader.reached(key, pos);
    }
    let mut stmt = conn.prepare_cached("SELECT heads FROM documents WHERE id = ?1")?;
    let mut heads = HashMap::new();
    for id in reader.doc_ids() {
        heads.insert(id.to_owned(), stmt.query_row([id], |r| r.get(0))?);
    }
    Ok(reader.finish(&heads))
}

#[cfg(test)]
mod tests {
    use crate::store::sql::OPEN_STATUSES;

    /// The migrations are frozen text; the open statuses written in them must be the ones
    /// `Status::is_open` names today, or the partial index stops serving the overdue queries.
    #[test]
    fn the_open_statuses_of_the_queries_are_those_of_the_frozen_index() {
        let clause = OPEN_STATUSES.to_string();
        assert_eq!(
            clause,
            "status IN ('reported', 'accepted', 'dispatched', 'handling')"
        );
        let migration = include_str!("migrations/0007_command_centre.sql");
        assert_eq!(migration.matches(&format!("WHERE {clause}")).count(), 2);
        // And the district's day they bucket by is the one `gridlink_core::day` computes.
        use gridlink_core::day::{DAY_MS, OFFSET_MS};
        assert!(migration.contains(&format!("(reported_at + {OFFSET_MS}) / {DAY_MS}")));
    }
}
