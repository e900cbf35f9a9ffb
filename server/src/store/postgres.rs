//! The PostgreSQL backend: the district master in a database server that several server
//! nodes share (`gridlink-server serve --database postgres://…`).
//!
//! The same contract as the SQLite backend, with the same answers (the conformance suite and
//! the server's integration suite run against both). What differs:
//!
//! - **Commits are serialised by the database, across nodes.** Every [`DocumentStore::commit`]
//!   first takes one transaction-level advisory lock ([`COMMIT_LOCK`]); the change and scope
//!   log sequence numbers are taken after it, so sequence order is commit order. A reader's
//!   cursor therefore never passes a change still being written by another node (the trap of
//!   a plain `seq > cursor` over concurrent writers, ADR 0014), and the stale-heads check reads
//!   what the last commit left. The lock is released by the commit or by the database when the
//!   connection dies: a killed node holds nothing.
//! - **Pulls read one snapshot** (`REPEATABLE READ`): every scope of a page is read as of the
//!   same instant.
//! - **Connections are pooled** and replaced when broken; a database that cannot be reached
//!   is [`StoreError::Unavailable`] (a retryable 503), never a crash.
//! - **Migrations** are numbered files of their own (`pg_migrations/`), run at start-up in one
//!   transaction under an advisory lock (several nodes may start at once); the version is kept
//!   in `gridlink_schema`.

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
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, GenericClient, NoTls, Row, Statement};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The advisory lock every commit holds until it ends (any node, any connection): the first
/// key of a two-key lock whose second is the schema's, so district masters kept as schemas of
/// one database do not wait for each other.
pub const COMMIT_LOCK: i32 = 0x676c_0000;
/// The advisory lock migrations hold (with the schema's key).
const MIGRATE_LOCK: i32 = 0x676c_0002;
/// The first key of the two-key advisory locks taken per phone number at registration.
const PHONE_LOCK: i32 = 0x676c_0001;
/// Connections kept open when idle.
const IDLE_CONNECTIONS: usize = 8;

// The backend's errors in the contract's terms.
impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        if let Some(db) = e.as_db_error() {
            let code = db.code();
            return if *code == SqlState::DISK_FULL || *code == SqlState::OUT_OF_MEMORY {
                StoreError::Full(db.to_string())
            } else if [
                SqlState::T_R_SERIALIZATION_FAILURE,
                SqlState::T_R_DEADLOCK_DETECTED,
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
                SqlState::QUERY_CANCELED,
                SqlState::LOCK_NOT_AVAILABLE,
                SqlState::READ_ONLY_SQL_TRANSACTION,
                SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
            ]
            .contains(code)
                || code.code().starts_with("08")
            {
                // The database restarts, fails over, or is busy: nothing was written.
                StoreError::Unavailable(db.to_string())
            } else if *code == SqlState::DATA_CORRUPTED || *code == SqlState::INDEX_CORRUPTED {
                StoreError::Corrupt(db.to_string())
            } else if *code == SqlState::UNIQUE_VIOLATION {
                StoreError::Conflict(db.to_string())
            } else {
                StoreError::Database(db.to_string())
            };
        }
        let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
        if e.is_closed() || io {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Database(e.to_string())
        }
    }
}

/// A numbered migration: frozen SQL, then the work SQL alone cannot do, in one transaction.
struct Migration {
    sql: &'static str,
    after: Option<fn(&mut postgres::Transaction<'_>) -> StoreResult<()>>,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        sql: include_str!("pg_migrations/0001_init.sql"),
        after: Some(first_settings),
    },
    Migration {
        sql: include_str!("pg_migrations/0002_warnings.sql"),
        after: Some(fill_warnings),
    },
];

/// Migration 0002's data work: the deadlines and warnings of open cases under the stored rules.
fn fill_warnings(tx: &mut postgres::Transaction<'_>) -> StoreResult<()> {
    let mut prepared = HashMap::new();
    let mut db = Db {
        client: tx,
        prepared: &mut prepared,
    };
    let rules = match db.query_opt(
        "SELECT value FROM settings WHERE key = $1",
        &[&super::RULES_SETTING],
    )? {
        Some(row) => super::rules_from(&row.try_get::<_, Vec<u8>>(0)?)?,
        None => super::DistrictRules::default(),
    };
    let changed = refresh_open_deadlines(&mut db, &rules.limits)?;
    if changed > 0 {
        tracing::info!(
            cases = changed,
            "deadlines and warnings of open cases filled"
        );
    }
    Ok(())
}

/// Rewrites the deadline and warning of every open case from its document; how many changed.
/// Under the commit lock, so no merge writes a row between the read and the write.
fn refresh_open_deadlines<C: GenericClient>(
    db: &mut Db<'_, C>,
    limits: &gridlink_core::case::TimeLimits,
) -> StoreResult<u64> {
    db.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))",
        &[&COMMIT_LOCK],
    )?;
    let open = db.query(
        &format!("SELECT id, due_at, warn_at FROM cases WHERE {OPEN_STATUSES} ORDER BY id"),
        &[],
    )?;
    let mut changed = 0;
    for row in open {
        let id: String = row.try_get(0)?;
        let before: (Option<i64>, Option<i64>) = (row.try_get(1)?, row.try_get(2)?);
        let Some((bytes, _)) = document_bytes(db, &id)? else {
            continue;
        };
        let Some(now) = super::deadlines_of(&id, &bytes, limits) else {
            continue;
        };
        if now != before {
            db.execute(
                "UPDATE cases SET due_at = $2, warn_at = $3 WHERE id = $1",
                &[&id, &now.0, &now.1],
            )?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// The schema version this build creates on PostgreSQL.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The settings an installation is born with: the pepper of phone-number hashes and the
/// history id (made here, in the migration's transaction, so nodes that start together agree).
fn first_settings(tx: &mut postgres::Transaction<'_>) -> StoreResult<()> {
    let mut pepper = [0u8; 32];
    getrandom::fill(&mut pepper).map_err(|e| StoreError::Database(e.to_string()))?;
    tx.execute(
        "INSERT INTO settings (key, value) VALUES ('phone_pepper', $1), ($2, $3)",
        &[
            &&pepper[..],
            &super::HISTORY_SETTING,
            &super::backup::new_history_id().into_bytes(),
        ],
    )?;
    Ok(())
}

fn migrate(client: &mut Client) -> StoreResult<()> {
    let mut tx = client.transaction()?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))",
        &[&MIGRATE_LOCK],
    )?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS gridlink_schema (version BIGINT NOT NULL)")?;
    let found: i64 = tx
        .query_opt("SELECT version FROM gridlink_schema", &[])?
        .map(|r| r.try_get(0))
        .transpose()?
        .unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    for migration in MIGRATIONS.iter().skip(usize::try_from(found).unwrap_or(0)) {
        tx.batch_execute(migration.sql)?;
        if let Some(after) = migration.after {
            after(&mut tx)?;
        }
    }
    tx.execute("DELETE FROM gridlink_schema", &[])?;
    tx.execute(
        "INSERT INTO gridlink_schema (version) VALUES ($1)",
        &[&SCHEMA_VERSION],
    )?;
    tx.commit()?;
    Ok(())
}

/// One pooled connection with the statements it has prepared.
struct Conn {
    client: Client,
    prepared: HashMap<String, Statement>,
}

/// A connection (or a transaction on one) and its statement cache.
struct Db<'a, C: GenericClient> {
    client: &'a mut C,
    prepared: &'a mut HashMap<String, Statement>,
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

impl<C: GenericClient> Db<'_, C> {
    fn statement(&mut self, sql: &str) -> StoreResult<Statement> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.prepared.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    fn execute(&mut self, sql: &str, params: Params<'_>) -> StoreResult<u64> {
        let s = self.statement(sql)?;
        Ok(self.client.execute(&s, params)?)
    }

    fn query(&mut self, sql: &str, params: Params<'_>) -> StoreResult<Vec<Row>> {
        let s = self.statement(sql)?;
        Ok(self.client.query(&s, params)?)
    }

    fn query_opt(&mut self, sql: &str, params: Params<'_>) -> StoreResult<Option<Row>> {
        let s = self.statement(sql)?;
        Ok(self.client.query_opt(&s, params)?)
    }

    fn query_one(&mut self, sql: &str, params: Params<'_>) -> StoreResult<Row> {
        let s = self.statement(sql)?;
        Ok(self.client.query_one(&s, params)?)
    }

    /// The first column of every row.
    fn column<T: for<'r> postgres::types::FromSql<'r>>(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> StoreResult<Vec<T>> {
        self.query(sql, params)?
            .iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect()
    }
}

/// The PostgreSQL backend. See the module docs.
pub struct PgStore {
    config: postgres::Config,
    idle: Mutex<Vec<Conn>>,
    counts: PoolCounts,
}

#[derive(Default)]
struct PoolCounts {
    in_use: AtomicU64,
    opened: AtomicU64,
    connect_failures: AtomicU64,
    broken: AtomicU64,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("PgStore")
            .field("dbname", &self.config.get_dbname())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`, or with
    /// `?host=/path/to/socket/dir`), brings its schema up to date and returns the store.
    /// A URL that does not parse, an unreachable database and a schema newer than this build
    /// are errors; nothing is written in any of those cases.
    pub fn open(url: &str) -> StoreResult<PgStore> {
        let mut config: postgres::Config = url.parse().map_err(|e| {
            StoreError::Database(format!(
                "数据库地址无效 / the database URL is not valid: {e}"
            ))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        if config.get_application_name().is_none() {
            config.application_name("gridlink-server");
        }
        config.keepalives_idle(Duration::from_secs(30));
        let store = PgStore {
            config,
            idle: Mutex::new(Vec::new()),
            counts: PoolCounts::default(),
        };
        let mut conn = store.connect()?;
        migrate(&mut conn.client)?;
        lock(&store.idle).push(conn);
        Ok(store)
    }

    fn connect(&self) -> StoreResult<Conn> {
        let mut client = self.config.connect(NoTls).map_err(|e| {
            self.counts.connect_failures.fetch_add(1, Ordering::Relaxed);
            let cause = std::error::Error::source(&e)
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            StoreError::Unavailable(format!("PostgreSQL: {e}{cause}"))
        })?;
        self.counts.opened.fetch_add(1, Ordering::Relaxed);
        // A commit waits for the commit lock at most this long (then: retry later), and a
        // connection that dies inside a transaction cannot hold the lock past the timeout.
        client.batch_execute(
            "SET lock_timeout = '15s'; SET idle_in_transaction_session_timeout = '60s';
             SET client_min_messages = warning",
        )?;
        Ok(Conn {
            client,
            prepared: HashMap::new(),
        })
    }

    fn with_conn<T>(&self, f: impl FnOnce(&mut Conn) -> StoreResult<T>) -> StoreResult<T> {
        let popped = lock(&self.idle).pop();
        let mut conn = match popped {
            Some(conn) if !conn.client.is_closed() => conn,
            popped => {
                if popped.is_some() {
                    self.counts.broken.fetch_add(1, Ordering::Relaxed);
                }
                self.connect()?
            }
        };
        self.counts.in_use.fetch_add(1, Ordering::Relaxed);
        let out = f(&mut conn);
        self.counts.in_use.fetch_sub(1, Ordering::Relaxed);
        if conn.client.is_closed() {
            self.counts.broken.fetch_add(1, Ordering::Relaxed);
        } else {
            let mut idle = lock(&self.idle);
            if idle.len() < IDLE_CONNECTIONS {
                idle.push(conn);
            }
        }
        out
    }

    /// Runs `f` outside a transaction (one statement, or reads that need no snapshot).
    fn read<T>(&self, f: impl FnOnce(&mut Db<'_, Client>) -> StoreResult<T>) -> StoreResult<T> {
        self.with_conn(|conn| {
            f(&mut Db {
                client: &mut conn.client,
                prepared: &mut conn.prepared,
            })
        })
    }

    /// Runs `f` in a transaction, committed if it returns `Ok` (rolled back otherwise).
    fn write<T>(
        &self,
        f: impl FnOnce(&mut Db<'_, postgres::Transaction<'_>>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.with_conn(|conn| {
            let mut tx = conn.client.transaction()?;
            let out = f(&mut Db {
                client: &mut tx,
                prepared: &mut conn.prepared,
            })?;
            tx.commit()?;
            Ok(out)
        })
    }
}

fn role_of(code: &str) -> StoreResult<Role> {
    Role::from_code(code).ok_or_else(|| StoreError::Corrupt(format!("unknown role {code:?}")))
}

fn user_row(r: &Row, at: usize) -> StoreResult<User> {
    Ok(User {
        id: r.try_get(at)?,
        name: r.try_get(at + 1)?,
        role: role_of(r.try_get(at + 2)?)?,
    })
}

fn device_auth(r: &Row) -> StoreResult<DeviceAuth> {
    Ok(DeviceAuth {
        device_id: r.try_get(0)?,
        actor_prefix: r.try_get(1)?,
        user: user_row(r, 2)?,
    })
}

fn case_row(r: &Row) -> StoreResult<CaseRow> {
    Ok(CaseRow {
        id: r.try_get(0)?,
        place: GridPlace {
            grid_id: r.try_get(1)?,
            village_id: r.try_get(2)?,
            town_id: r.try_get(3)?,
        },
        category: r.try_get(4)?,
        source: r.try_get(5)?,
        status: r.try_get(6)?,
        level: r.try_get(7)?,
        assignee: r.try_get(8)?,
        reporter: r.try_get(9)?,
        title: r.try_get(10)?,
        reported_at: r.try_get(11)?,
        updated_at: r.try_get(12)?,
        due_at: r.try_get(13)?,
        closed_at: r.try_get(14)?,
        solved_level: r.try_get(15)?,
        flagged: r.try_get(16)?,
        events: r.try_get(17)?,
        point: match (
            r.try_get::<_, Option<f64>>(18)?,
            r.try_get::<_, Option<f64>>(19)?,
        ) {
            (Some(lat), Some(lon)) => Some(gridlink_core::geo::LatLon::new(lat, lon)),
            _ => None,
        },
        address_id: r.try_get(20)?,
        description: r.try_get(21)?,
        warn_at: r.try_get(22)?,
    })
}

fn case_rows(rows: Vec<Row>) -> StoreResult<Vec<CaseRow>> {
    rows.iter().map(case_row).collect()
}

fn blob_row(r: &Row) -> StoreResult<BlobRow> {
    Ok(BlobRow {
        hash: r.try_get(0)?,
        size: u64::try_from(r.try_get::<_, i64>(1)?).unwrap_or(0),
        kind: r.try_get(2)?,
        thumb_of: r.try_get(3)?,
        device_id: r.try_get(4)?,
        received_at_ms: r.try_get(5)?,
    })
}

fn count(r: &Row, at: usize) -> StoreResult<u64> {
    Ok(u64::try_from(r.try_get::<_, i64>(at)?).unwrap_or(0))
}

fn insert_audit<C: GenericClient>(db: &mut Db<'_, C>, e: &AuditEntry) -> StoreResult<()> {
    db.execute(
        "INSERT INTO audit (at, actor, device, action, subject, detail) VALUES ($1, $2, $3, $4, $5, $6)",
        &[&e.at_ms, &e.actor, &e.device, &e.action, &e.subject, &e.detail],
    )?;
    Ok(())
}

fn require_user<C: GenericClient>(db: &mut Db<'_, C>, user_id: &str) -> StoreResult<()> {
    let exists: bool = db
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)",
            &[&user_id],
        )?
        .try_get(0)?;
    if exists {
        Ok(())
    } else {
        Err(StoreError::NotFound(user_id.to_owned()))
    }
}

/// Arguments of a query built clause by clause: each value gets the next `$N`.
#[derive(Default)]
struct Args(Vec<Box<dyn ToSql + Sync>>);

impl Args {
    fn push(&mut self, v: impl ToSql + Sync + 'static) -> String {
        self.0.push(Box::new(v));
        format!("${}", self.0.len())
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect()
    }
}

/// The clause keeping rows within an area, as `gridlink_core::sync::visibility` filters them
/// (see the SQLite backend's twin); `None` for the whole district.
fn area_clause(area: &Area, args: &mut Args, towns_only: bool) -> Option<String> {
    let filter = if towns_only {
        area.town_filter()
    } else {
        area.filter()
    };
    let (towns, villages, grids) = match filter {
        PlaceFilter::All => return None,
        PlaceFilter::Nothing => return Some("FALSE".to_owned()),
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
            any.push(format!("{column} = ANY({})", args.push(ids.to_vec())));
        }
    }
    Some(format!("({})", any.join(" OR ")))
}

/// A stored document's bytes and how many chunks of changes it holds.
fn document_bytes<C: GenericClient>(
    db: &mut Db<'_, C>,
    doc_id: &str,
) -> StoreResult<Option<(Vec<u8>, u32)>> {
    let Some(row) = db.query_opt(
        "SELECT base, base_seq, chunks FROM documents WHERE id = $1",
        &[&doc_id],
    )?
    else {
        return Ok(None);
    };
    let mut bytes: Vec<u8> = row.try_get(0)?;
    let base_seq: i64 = row.try_get(1)?;
    let chunks = u32::try_from(row.try_get::<_, i32>(2)?).unwrap_or(0);
    for r in db.query(
        "SELECT bytes FROM changes WHERE doc_id = $1 AND seq > $2 ORDER BY seq",
        &[&doc_id, &base_seq],
    )? {
        bytes.extend_from_slice(r.try_get::<_, &[u8]>(0)?);
    }
    Ok(Some((bytes, chunks)))
}

fn scopes_of<C: GenericClient>(
    db: &mut Db<'_, C>,
    doc_id: &str,
) -> StoreResult<BTreeSet<ScopeKey>> {
    Ok(parse_scopes(db.column::<String>(
        "SELECT scope FROM doc_scopes WHERE doc_id = $1",
        &[&doc_id],
    )?))
}

fn add_rollups<C: GenericClient>(db: &mut Db<'_, C>, delta: &RollupDelta) -> StoreResult<()> {
    for ((unit, day), (points, lines)) in &delta.score_days {
        db.execute(
            "INSERT INTO score_days (unit, day, points, lines) VALUES ($1, $2, $3, $4)
             ON CONFLICT (unit, day) DO UPDATE SET points = score_days.points + excluded.points,
                lines = score_days.lines + excluded.lines",
            &[unit, day, points, lines],
        )?;
    }
    for ((unit, block), (points, lines)) in &delta.score_blocks() {
        db.execute(
            "INSERT INTO score_blocks (unit, block, points, lines) VALUES ($1, $2, $3, $4)
             ON CONFLICT (unit, block) DO UPDATE SET points = score_blocks.points + excluded.points,
                lines = score_blocks.lines + excluded.lines",
            &[unit, block, points, lines],
        )?;
    }
    for ((day, town, category, closed, solved), n) in &delta.case_counts {
        db.execute(
            "INSERT INTO case_counts (day, town_id, category, closed, solved_level, n)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (day, town_id, category, closed, solved_level)
             DO UPDATE SET n = case_counts.n + excluded.n",
            &[day, town, category, closed, solved, n],
        )?;
    }
    for ((grid, level), n) in &delta.open_cases {
        db.execute(
            "INSERT INTO open_cases (grid_id, level, n) VALUES ($1, $2, $3)
             ON CONFLICT (grid_id, level) DO UPDATE SET n = open_cases.n + excluded.n",
            &[grid, level, n],
        )?;
    }
    Ok(())
}

fn write_merge<C: GenericClient>(db: &mut Db<'_, C>, m: &Merge, at: i64) -> StoreResult<()> {
    let known: Option<Vec<u8>> = db
        .query_opt("SELECT heads FROM documents WHERE id = $1", &[&m.doc_id])?
        .map(|r| r.try_get(0))
        .transpose()?;
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
        db.execute(
            "INSERT INTO documents (id, kind, heads, base, base_seq, chunks) VALUES ($1, $2, $3, '\\x', 0, 0)",
            &[&m.doc_id, &DocKind::of(&m.doc_id).code(), &heads],
        )?;
    }
    let seq: i64 = db
        .query_one(
            "INSERT INTO changes (doc_id, device_id, bytes, at) VALUES ($1, $2, $3, $4) RETURNING seq",
            &[&m.doc_id, &m.device_id, &m.changes, &at],
        )?
        .try_get(0)?;
    match &m.compacted {
        Some(base) => db.execute(
            "UPDATE documents SET heads = $2, base = $3, base_seq = $4, chunks = 0 WHERE id = $1",
            &[&m.doc_id, &heads, base, &seq],
        )?,
        None => db.execute(
            "UPDATE documents SET heads = $2, chunks = chunks + 1 WHERE id = $1",
            &[&m.doc_id, &heads],
        )?,
    };
    for scope in &m.new_scopes {
        let key = scope.to_string();
        let added = db.execute(
            "INSERT INTO doc_scopes (doc_id, scope) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&m.doc_id, &key],
        )?;
        // The document enters this scope: its earlier changes enter the scope's log too, in
        // order. (The district's log is the change log itself.)
        if added == 0 || *scope == ScopeKey::District {
            continue;
        }
        db.execute(
            "INSERT INTO scope_log (scope, change_seq)
             SELECT $1, seq FROM changes WHERE doc_id = $2 AND seq < $3 ORDER BY seq",
            &[&key, &m.doc_id, &seq],
        )?;
    }
    for scope in m.scopes.iter().filter(|s| **s != ScopeKey::District) {
        db.execute(
            "INSERT INTO scope_log (scope, change_seq) VALUES ($1, $2)",
            &[&scope.to_string(), &seq],
        )?;
    }
    for hash in &m.photos {
        db.execute(
            "INSERT INTO case_photos (hash, case_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[hash, &m.doc_id],
        )?;
    }
    // The roll-ups: what the case counted for before leaves them, what it counts for now
    // enters them (`rollups` computes the difference).
    let before_lines: Vec<CountedLine> = db
        .query(
            "SELECT unit, points, at FROM score_lines WHERE case_id = $1",
            &[&m.doc_id],
        )?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect::<StoreResult<_>>()?;
    let before_case: Option<CaseCounted> = match &m.row {
        None => None,
        Some(_) => db
            .query_opt(
                "SELECT reported_at, town_id, grid_id, category, status, level, solved_level
                 FROM cases WHERE id = $1",
                &[&m.doc_id],
            )?
            .map(|r| -> StoreResult<CaseCounted> {
                Ok(CaseCounted {
                    reported_at: r.try_get(0)?,
                    town_id: r.try_get(1)?,
                    grid_id: r.try_get(2)?,
                    category: r.try_get(3)?,
                    status: r.try_get(4)?,
                    level: r.try_get(5)?,
                    solved_level: r.try_get(6)?,
                })
            })
            .transpose()?,
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
    add_rollups(db, &delta)?;
    db.execute("DELETE FROM score_lines WHERE case_id = $1", &[&m.doc_id])?;
    for l in &m.scores {
        db.execute(
            "INSERT INTO score_lines (case_id, unit, points, reason, at) VALUES ($1, $2, $3, $4, $5)",
            &[
                &m.doc_id,
                &l.unit.key(),
                &l.points,
                &reason_code(l.reason),
                &l.at_ms,
            ],
        )?;
    }
    if let Some(r) = &m.record {
        db.execute(
            "INSERT INTO records (doc_id, kind, grid_id, subject, actor, started_at, done_at, updated_at, title)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (doc_id) DO UPDATE SET grid_id = excluded.grid_id, subject = excluded.subject,
                title = excluded.title, actor = excluded.actor, started_at = excluded.started_at,
                done_at = excluded.done_at, updated_at = excluded.updated_at",
            &[
                &m.doc_id,
                &r.kind.code(),
                &r.grid_id,
                &r.subject,
                &r.actor,
                &r.started_at_ms,
                &r.done_at_ms,
                &r.updated_at_ms,
                &r.title,
            ],
        )?;
    }
    let Some(r) = &m.row else {
        return Ok(());
    };
    db.execute(
        "INSERT INTO cases (id, grid_id, village_id, town_id, category, source, status, level, assignee,
                            reporter, title, reported_at, updated_at, due_at, closed_at, solved_level, flagged, events,
                            lat, lon, address_id, description, warn_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)
         ON CONFLICT (id) DO UPDATE SET
            grid_id = excluded.grid_id, village_id = excluded.village_id, town_id = excluded.town_id,
            category = excluded.category, source = excluded.source, status = excluded.status,
            level = excluded.level, assignee = excluded.assignee, reporter = excluded.reporter,
            title = excluded.title, reported_at = excluded.reported_at, updated_at = excluded.updated_at,
            due_at = excluded.due_at, closed_at = excluded.closed_at, solved_level = excluded.solved_level,
            flagged = excluded.flagged, events = excluded.events, lat = excluded.lat, lon = excluded.lon,
            address_id = excluded.address_id, description = excluded.description,
            warn_at = excluded.warn_at",
        &[
            &r.id,
            &r.place.grid_id,
            &r.place.village_id,
            &r.place.town_id,
            &r.category,
            &r.source,
            &r.status,
            &r.level,
            &r.assignee,
            &r.reporter,
            &r.title,
            &r.reported_at,
            &r.updated_at,
            &r.due_at,
            &r.closed_at,
            &r.solved_level,
            &r.flagged,
            &r.events,
            &r.point.map(|p| p.lat),
            &r.point.map(|p| p.lon),
            &r.address_id,
            &r.description,
            &r.warn_at,
        ],
    )?;
    Ok(())
}

impl DocumentStore for PgStore {
    fn load_doc(&self, doc_id: &str) -> StoreResult<Option<StoredDoc>> {
        self.read(|db| {
            let Some((bytes, chunks)) = document_bytes(db, doc_id)? else {
                return Ok(None);
            };
            Ok(Some(StoredDoc {
                bytes,
                scopes: scopes_of(db, doc_id)?,
                chunks,
            }))
        })
    }

    fn refresh_deadlines(&self, limits: &gridlink_core::case::TimeLimits) -> StoreResult<u64> {
        self.write(|db| refresh_open_deadlines(db, limits))
    }

    fn commit(&self, merges: &[Merge], audit: &[AuditEntry]) -> StoreResult<()> {
        self.write(|db| {
            // The commit lock first: sequence numbers below are taken in commit order, and
            // the heads compared are those the last commit left.
            db.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))",
                &[&COMMIT_LOCK],
            )?;
            let at = now_ms();
            for m in merges {
                write_merge(db, m, at)?;
            }
            for e in audit {
                insert_audit(db, e)?;
            }
            Ok(())
        })
    }

    fn pull(
        &self,
        from: &[(ScopeKey, u64)],
        exclude_device: &str,
        max_bytes: u64,
    ) -> StoreResult<PullPage> {
        self.with_conn(|conn| {
            // One snapshot for every scope of the page.
            let mut tx = conn
                .client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let page = pull_in(
                &mut Db {
                    client: &mut tx,
                    prepared: &mut conn.prepared,
                },
                from,
                exclude_device,
                max_bytes,
            )?;
            tx.commit()?;
            Ok(page)
        })
    }

    fn docs_leaving(&self, left: &[ScopeKey], kept: &[ScopeKey]) -> StoreResult<Vec<String>> {
        if left.is_empty() {
            return Ok(Vec::new());
        }
        let left: Vec<String> = left.iter().map(ToString::to_string).collect();
        let kept: Vec<String> = kept.iter().map(ToString::to_string).collect();
        self.read(|db| {
            db.column(
                "SELECT DISTINCT l.doc_id FROM doc_scopes l
                 WHERE l.scope = ANY($1)
                   AND NOT EXISTS (SELECT 1 FROM doc_scopes k WHERE k.doc_id = l.doc_id AND k.scope = ANY($2))
                 ORDER BY l.doc_id",
                &[&left, &kept],
            )
        })
    }

    fn doc_count(&self) -> StoreResult<u64> {
        self.read(|db| count(&db.query_one("SELECT COUNT(*) FROM documents", &[])?, 0))
    }

    fn change_seq(&self) -> StoreResult<i64> {
        self.read(|db| {
            Ok(db
                .query_one("SELECT COALESCE(MAX(seq), 0) FROM changes", &[])?
                .try_get(0)?)
        })
    }

    fn pool(&self) -> Option<super::PoolStats> {
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        Some(super::PoolStats {
            idle: lock(&self.idle).len() as u64,
            in_use: load(&self.counts.in_use),
            opened: load(&self.counts.opened),
            connect_failures: load(&self.counts.connect_failures),
            broken: load(&self.counts.broken),
        })
    }
}

/// Reads a pull page (the rules are `sql::PageReader`'s).
fn pull_in<C: GenericClient>(
    db: &mut Db<'_, C>,
    from: &[(ScopeKey, u64)],
    exclude_device: &str,
    max_bytes: u64,
) -> StoreResult<PullPage> {
    const BATCH: i64 = 512;
    let mut reader = PageReader::new(exclude_device, max_bytes);
    for (key, start) in from {
        let mut pos = i64::try_from(*start).unwrap_or(i64::MAX);
        if reader.is_full() {
            reader.reached(key, pos);
            continue;
        }
        let scope = key.to_string();
        'scope: loop {
            let rows = if *key == ScopeKey::District {
                // Every document is in the district: its log is the change log.
                db.query(
                    "SELECT seq, seq, doc_id, device_id, bytes FROM changes
                     WHERE seq > $1 ORDER BY seq LIMIT $2",
                    &[&pos, &BATCH],
                )?
            } else {
                db.query(
                    "SELECT l.pos, c.seq, c.doc_id, c.device_id, c.bytes
                     FROM scope_log l JOIN changes c ON c.seq = l.change_seq
                     WHERE l.scope = $1 AND l.pos > $2 ORDER BY l.pos LIMIT $3",
                    &[&scope, &pos, &BATCH],
                )?
            };
            let full = rows.len() as i64 == BATCH;
            for r in rows {
                let device: &str = r.try_get(3)?;
                if !reader.take(*start, r.try_get(1)?, r.try_get(2)?, device, r.try_get(4)?) {
                    break 'scope;
                }
                pos = r.try_get(0)?;
            }
            if !full {
                break;
            }
        }
        reader.reached(key, pos);
    }
    let ids: Vec<&str> = reader.doc_ids().collect();
    let mut heads: HashMap<String, Vec<u8>> = HashMap::new();
    for r in db.query(
        "SELECT id, heads FROM documents WHERE id = ANY($1)",
        &[&ids],
    )? {
        heads.insert(r.try_get(0)?, r.try_get(1)?);
    }
    Ok(reader.finish(&heads))
}

impl Directory for PgStore {
    fn add_user(&self, user: &User, by: &str) -> StoreResult<()> {
        self.write(|db| {
            let added = db.execute(
                "INSERT INTO users (id, name, role, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
                &[&user.id, &user.name, &user.role.code(), &now_ms()],
            )?;
            if added == 0 {
                return Err(StoreError::Conflict(format!(
                    "用户 {} 已存在 / user {} already exists",
                    user.id, user.id
                )));
            }
            insert_audit(
                db,
                &admin(
                    by,
                    "user_add",
                    &user.id,
                    format!("{} {}", user.name, user.role.code()),
                ),
            )
        })
    }

    fn user(&self, id: &str) -> StoreResult<Option<User>> {
        self.read(|db| {
            db.query_opt("SELECT id, name, role FROM users WHERE id = $1", &[&id])?
                .map(|r| user_row(&r, 0))
                .transpose()
        })
    }

    fn grant(&self, user_id: &str, scope: &ScopeKey, by: &str) -> StoreResult<()> {
        let key = scope.to_string();
        self.write(|db| {
            require_user(db, user_id)?;
            db.execute(
                "INSERT INTO grants (user_id, scope, granted_at, granted_by) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_id, scope) DO NOTHING",
                &[&user_id, &key, &now_ms(), &by],
            )?;
            db.execute(
                "DELETE FROM revoked_grants WHERE user_id = $1 AND scope = $2",
                &[&user_id, &key],
            )?;
            insert_audit(db, &admin(by, "grant", user_id, key.clone()))
        })
    }

    fn revoke_grant(&self, user_id: &str, scope: &ScopeKey, by: &str) -> StoreResult<bool> {
        let key = scope.to_string();
        self.write(|db| {
            let n = db.execute(
                "DELETE FROM grants WHERE user_id = $1 AND scope = $2",
                &[&user_id, &key],
            )?;
            if n > 0 {
                db.execute(
                    "INSERT INTO revoked_grants (user_id, scope, revoked_at) VALUES ($1, $2, $3)
                     ON CONFLICT (user_id, scope) DO UPDATE SET revoked_at = excluded.revoked_at",
                    &[&user_id, &key, &now_ms()],
                )?;
            }
            insert_audit(db, &admin(by, "revoke_grant", user_id, key.clone()))?;
            Ok(n > 0)
        })
    }

    fn grants(&self, user_id: &str) -> StoreResult<BTreeSet<ScopeKey>> {
        self.read(|db| {
            Ok(parse_scopes(db.column::<String>(
                "SELECT scope FROM grants WHERE user_id = $1",
                &[&user_id],
            )?))
        })
    }

    fn revoked_grants(&self, user_id: &str) -> StoreResult<BTreeSet<ScopeKey>> {
        self.read(|db| {
            Ok(parse_scopes(db.column::<String>(
                "SELECT scope FROM revoked_grants WHERE user_id = $1",
                &[&user_id],
            )?))
        })
    }

    fn add_enroll_code(
        &self,
        user_id: &str,
        code_hash: &str,
        expires_at_ms: i64,
        by: &str,
    ) -> StoreResult<()> {
        self.write(|db| {
            require_user(db, user_id)?;
            db.execute(
                "INSERT INTO enroll_codes (code_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                &[&code_hash, &user_id, &now_ms(), &expires_at_ms],
            )?;
            insert_audit(
                db,
                &admin(
                    by,
                    "enroll_code",
                    user_id,
                    format!("expires {expires_at_ms}"),
                ),
            )
        })
    }

    fn enroll(&self, code_hash: &str, device: &NewDevice, now: i64) -> StoreResult<User> {
        self.write(|db| {
            let Some(row) = db.query_opt(
                "UPDATE enroll_codes SET used_at = $2, device_id = $3
                 WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING user_id",
                &[&code_hash, &now, &device.id],
            )?
            else {
                return Err(StoreError::NotFound("enrollment code".into()));
            };
            let user_id: String = row.try_get(0)?;
            // A phone that enrolls again replaces its old registration (see the SQLite twin).
            let registered = db.execute(
                "INSERT INTO devices (id, user_id, name, token_hash, actor_prefix, enrolled_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, name = excluded.name,
                    token_hash = excluded.token_hash, actor_prefix = excluded.actor_prefix,
                    enrolled_at = excluded.enrolled_at, revoked_at = NULL
                 WHERE devices.user_id = excluded.user_id OR devices.revoked_at IS NOT NULL",
                &[
                    &device.id,
                    &user_id,
                    &device.name,
                    &device.token_hash,
                    &device.actor_prefix,
                    &now,
                ],
            )?;
            if registered == 0 {
                // Another user's active device (the transaction rolls back: the code stays
                // unused).
                return Err(StoreError::Conflict(format!(
                    "设备 {} 已登记给其他用户，请先由管理员停用 / device {} is enrolled for another user; an operator must revoke it first",
                    device.id, device.id
                )));
            }
            let user = user_row(
                &db.query_one(
                    "SELECT id, name, role FROM users WHERE id = $1",
                    &[&user_id],
                )?,
                0,
            )?;
            insert_audit(
                db,
                &AuditEntry {
                    at_ms: now,
                    actor: user.id.clone(),
                    device: Some(device.id.clone()),
                    action: "enroll".into(),
                    subject: device.id.clone(),
                    detail: device.name.clone(),
                },
            )?;
            Ok(user)
        })
    }

    fn device_by_token(&self, token_hash: &str) -> StoreResult<Option<DeviceAuth>> {
        self.read(|db| {
            db.query_opt(
                "SELECT d.id, d.actor_prefix, u.id, u.name, u.role FROM devices d JOIN users u ON u.id = d.user_id
                 WHERE d.token_hash = $1 AND d.revoked_at IS NULL",
                &[&token_hash],
            )?
            .map(|r| device_auth(&r))
            .transpose()
        })
    }

    fn revoke_device(&self, device_id: &str, by: &str) -> StoreResult<bool> {
        self.write(|db| {
            let n = db.execute(
                "UPDATE devices SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&device_id, &now_ms()],
            )?;
            insert_audit(db, &admin(by, "revoke_device", device_id, String::new()))?;
            Ok(n > 0)
        })
    }

    fn put_grids(&self, grids: &[GridPlace]) -> StoreResult<()> {
        self.write(|db| {
            for g in grids {
                db.execute(
                    "INSERT INTO grids (id, village_id, town_id) VALUES ($1, $2, $3)
                     ON CONFLICT (id) DO UPDATE SET village_id = excluded.village_id, town_id = excluded.town_id",
                    &[&g.grid_id, &g.village_id, &g.town_id],
                )?;
            }
            Ok(())
        })
    }

    fn grids(&self) -> StoreResult<Vec<GridPlace>> {
        self.read(|db| {
            db.query("SELECT id, village_id, town_id FROM grids ORDER BY id", &[])?
                .iter()
                .map(|r| {
                    Ok(GridPlace {
                        grid_id: r.try_get(0)?,
                        village_id: r.try_get(1)?,
                        town_id: r.try_get(2)?,
                    })
                })
                .collect()
        })
    }

    fn register_citizen(
        &self,
        citizen: &Citizen,
        device: &NewDevice,
        max_per_phone: u32,
    ) -> StoreResult<()> {
        self.write(|db| {
            if let Some(phone) = &citizen.phone_hash {
                // One registration of a number at a time, on every node: the count below
                // stays true until this transaction ends.
                db.execute(
                    "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                    &[&PHONE_LOCK, phone],
                )?;
                let n = count(
                    &db.query_one(
                        "SELECT COUNT(*) FROM citizens WHERE phone_hash = $1",
                        &[phone],
                    )?,
                    0,
                )?;
                if n >= u64::from(max_per_phone) {
                    return Err(StoreError::Conflict(
                        "该手机号注册次数过多 / this phone number has too many registrations"
                            .into(),
                    ));
                }
            }
            let taken: bool = db
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM devices WHERE id = $1)",
                    &[&device.id],
                )?
                .try_get(0)?;
            if taken {
                return Err(StoreError::Conflict(format!(
                    "设备 {} 已注册 / device {} is already registered",
                    device.id, device.id
                )));
            }
            let at = citizen.registered_at_ms;
            db.execute(
                "INSERT INTO users (id, name, role, created_at) VALUES ($1, $2, 'citizen', $3)",
                &[
                    &citizen.user_id,
                    &citizen.name.clone().unwrap_or_default(),
                    &at,
                ],
            )?;
            db.execute(
                "INSERT INTO citizens (user_id, name, phone_hash, phone_masked, registered_at)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &citizen.user_id,
                    &citizen.name,
                    &citizen.phone_hash,
                    &citizen.phone_masked,
                    &at,
                ],
            )?;
            db.execute(
                "INSERT INTO devices (id, user_id, name, token_hash, actor_prefix, enrolled_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &device.id,
                    &citizen.user_id,
                    &device.name,
                    &device.token_hash,
                    &device.actor_prefix,
                    &at,
                ],
            )?;
            insert_audit(
                db,
                &AuditEntry {
                    at_ms: at,
                    actor: citizen.user_id.clone(),
                    device: Some(device.id.clone()),
                    action: "citizen_register".into(),
                    subject: citizen.user_id.clone(),
                    detail: String::new(),
                },
            )
        })
    }

    fn citizen(&self, user_id: &str) -> StoreResult<Option<Citizen>> {
        self.read(|db| {
            db.query_opt(
                "SELECT user_id, name, phone_hash, phone_masked, registered_at FROM citizens WHERE user_id = $1",
                &[&user_id],
            )?
            .map(|r| -> StoreResult<Citizen> {
                Ok(Citizen {
                    user_id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    phone_hash: r.try_get(2)?,
                    phone_masked: r.try_get(3)?,
                    registered_at_ms: r.try_get(4)?,
                })
            })
            .transpose()
        })
    }

    fn add_api_key(&self, key_hash: &str, key: &ApiKey, by: &str) -> StoreResult<()> {
        let scope = key.scope.to_string();
        self.write(|db| {
            db.execute(
                "INSERT INTO api_keys (key_hash, name, scope, created_at, created_by, revoked_at)
                 VALUES ($1, $2, $3, $4, $5, NULL)",
                &[&key_hash, &key.name, &scope, &key.created_at, &by],
            )?;
            insert_audit(
                db,
                &AuditEntry {
                    at_ms: key.created_at,
                    actor: by.to_owned(),
                    device: None,
                    action: "api_key".into(),
                    subject: key.name.clone(),
                    detail: scope.clone(),
                },
            )
        })
    }

    fn api_key(&self, key_hash: &str) -> StoreResult<Option<ApiKey>> {
        self.read(|db| {
            let Some(r) = db.query_opt(
                "SELECT name, scope, created_at, revoked_at FROM api_keys WHERE key_hash = $1",
                &[&key_hash],
            )?
            else {
                return Ok(None);
            };
            let scope: String = r.try_get(1)?;
            Ok(Some(ApiKey {
                name: r.try_get(0)?,
                scope: scope
                    .parse()
                    .map_err(|_| StoreError::Database(format!("api key scope {scope:?}")))?,
                created_at: r.try_get(2)?,
                revoked: r.try_get::<_, Option<i64>>(3)?.is_some(),
            }))
        })
    }

    fn set_web_password(&self, user_id: &str, hash: &str, by: &str) -> StoreResult<()> {
        self.write(|db| {
            require_user(db, user_id)?;
            db.execute(
                "INSERT INTO web_passwords (user_id, hash, set_at) VALUES ($1, $2, $3)
                 ON CONFLICT (user_id) DO UPDATE SET hash = excluded.hash, set_at = excluded.set_at",
                &[&user_id, &hash, &now_ms()],
            )?;
            // A new password signs the user out everywhere.
            db.execute("DELETE FROM web_sessions WHERE user_id = $1", &[&user_id])?;
            insert_audit(db, &admin(by, "web_password", user_id, String::new()))
        })
    }

    fn web_password(&self, user_id: &str) -> StoreResult<Option<String>> {
        self.read(|db| {
            db.query_opt(
                "SELECT hash FROM web_passwords WHERE user_id = $1",
                &[&user_id],
            )?
            .map(|r| Ok(r.try_get(0)?))
            .transpose()
        })
    }

    fn add_web_session(&self, session: &WebSession) -> StoreResult<()> {
        self.write(|db| {
            db.execute(
                "DELETE FROM web_sessions WHERE expires_at <= $1",
                &[&session.created_at],
            )?;
            db.execute(
                "INSERT INTO web_sessions (token_hash, user_id, csrf, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &session.token_hash,
                    &session.user_id,
                    &session.csrf,
                    &session.created_at,
                    &session.expires_at,
                ],
            )?;
            insert_audit(
                db,
                &admin(
                    &session.user_id,
                    "web_sign_in",
                    &session.user_id,
                    String::new(),
                ),
            )
        })
    }

    fn web_session(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> StoreResult<Option<(WebSession, User)>> {
        self.read(|db| {
            db.query_opt(
                "SELECT s.token_hash, s.user_id, s.csrf, s.created_at, s.expires_at, u.id, u.name, u.role
                 FROM web_sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash = $1 AND s.expires_at > $2",
                &[&token_hash, &now_ms],
            )?
            .map(|r| -> StoreResult<(WebSession, User)> {
                Ok((
                    WebSession {
                        token_hash: r.try_get(0)?,
                        user_id: r.try_get(1)?,
                        csrf: r.try_get(2)?,
                        created_at: r.try_get(3)?,
                        expires_at: r.try_get(4)?,
                    },
                    user_row(&r, 5)?,
                ))
            })
            .transpose()
        })
    }

    fn end_web_session(&self, token_hash: &str) -> StoreResult<()> {
        self.read(|db| {
            db.execute(
                "DELETE FROM web_sessions WHERE token_hash = $1",
                &[&token_hash],
            )?;
            Ok(())
        })
    }

    fn web_device(&self, user_id: &str, actor_prefix: &[u8]) -> StoreResult<DeviceAuth> {
        let device_id = format!("web-{user_id}");
        self.write(|db| {
            require_user(db, user_id)?;
            // The token column holds a value no token hashes to (hashes are 64 hex digits).
            db.execute(
                "INSERT INTO devices (id, user_id, name, token_hash, actor_prefix, enrolled_at)
                 VALUES ($1, $2, '指挥中心网页 / command centre web', $3, $4, $5)
                 ON CONFLICT (id) DO NOTHING",
                &[
                    &device_id,
                    &user_id,
                    &format!("web:{device_id}"),
                    &actor_prefix,
                    &now_ms(),
                ],
            )?;
            db.query_opt(
                "SELECT d.id, d.actor_prefix, u.id, u.name, u.role FROM devices d JOIN users u ON u.id = d.user_id
                 WHERE d.id = $1 AND d.user_id = $2 AND d.revoked_at IS NULL",
                &[&device_id, &user_id],
            )?
            .map(|r| device_auth(&r))
            .transpose()?
            .ok_or_else(|| {
                StoreError::Conflict(format!(
                    "{device_id} 已停用 / the web device {device_id} was revoked"
                ))
            })
        })
    }
}

impl CaseQueries for PgStore {
    fn case_row(&self, id: &str) -> StoreResult<Option<CaseRow>> {
        self.read(|db| {
            db.query_opt(
                &format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = $1"),
                &[&id],
            )?
            .map(|r| case_row(&r))
            .transpose()
        })
    }

    fn reported_by(&self, user_id: &str, limit: u32) -> StoreResult<Vec<CaseRow>> {
        self.read(|db| {
            case_rows(db.query(
                &format!(
                    "SELECT {CASE_COLUMNS} FROM cases WHERE reporter = $1
                     ORDER BY reported_at DESC, id LIMIT $2"
                ),
                &[&user_id, &i64::from(limit)],
            )?)
        })
    }

    fn overdue_cases(
        &self,
        now_ms: i64,
        scopes: Option<&BTreeSet<ScopeKey>>,
        limit: u32,
    ) -> StoreResult<Vec<CaseRow>> {
        let open = format!("due_at IS NOT NULL AND due_at < $1 AND {OPEN_STATUSES}");
        let limit = i64::from(limit);
        self.read(
            |db| match scopes.filter(|s| !s.contains(&ScopeKey::District)) {
                None => case_rows(db.query(
                    &format!(
                        "SELECT {CASE_COLUMNS} FROM cases WHERE {open} ORDER BY due_at, id LIMIT $2"
                    ),
                    &[&now_ms, &limit],
                )?),
                Some(scopes) => {
                    let keys: Vec<String> = scopes.iter().map(ToString::to_string).collect();
                    case_rows(db.query(
                        &format!(
                            "SELECT {CASE_COLUMNS} FROM cases WHERE {open}
                           AND id IN (SELECT doc_id FROM doc_scopes WHERE scope = ANY($3))
                         ORDER BY due_at, id LIMIT $2"
                        ),
                        &[&now_ms, &limit, &keys],
                    )?)
                }
            },
        )
    }

    fn record_ids(&self, kind: &str) -> StoreResult<Vec<String>> {
        self.read(|db| {
            db.column(
                "SELECT doc_id FROM records WHERE kind = $1 ORDER BY doc_id",
                &[&kind],
            )
        })
    }

    fn coverage(&self, grid_id: &str) -> StoreResult<Vec<CoverageRow>> {
        self.read(|db| {
            db.query(
                "SELECT a.subject, a.title,
                        (SELECT MAX(v.done_at) FROM records v
                         WHERE v.kind = 'visit' AND v.subject = a.subject AND v.grid_id = a.grid_id
                           AND v.done_at IS NOT NULL)
                 FROM records a WHERE a.kind = 'address' AND a.grid_id = $1 ORDER BY a.subject",
                &[&grid_id],
            )?
            .iter()
            .map(|r| {
                Ok(CoverageRow {
                    code: r.try_get(0)?,
                    text: r.try_get(1)?,
                    last_visit_ms: r.try_get(2)?,
                })
            })
            .collect()
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
        self.read(|db| case_rows(db.query(&sql, &args.refs())?))
    }

    fn case_total(&self, filter: &CaseFilter) -> StoreResult<u64> {
        let mut args = Args::default();
        let clauses = case_clauses(filter, &mut args);
        let sql = format!("SELECT COUNT(*) FROM cases {}", where_of(&clauses));
        self.read(|db| count(&db.query_one(&sql, &args.refs())?, 0))
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
            clauses.push(format!("{column} = ANY({})", args.push(values.clone())));
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
                "(id ILIKE {pattern} ESCAPE '\\' OR title ILIKE {pattern} ESCAPE '\\' \
                 OR description ILIKE {pattern} ESCAPE '\\' \
                 OR COALESCE(address_id, '') ILIKE {pattern} ESCAPE '\\' \
                 OR COALESCE(reporter, '') ILIKE {pattern} ESCAPE '\\')"
            ));
        }
    }
    clauses
}

impl Statistics for PgStore {
    fn score_totals(&self, from_ms: i64, to_ms: i64) -> StoreResult<Vec<ScoreTotal>> {
        let (first, end) = gridlink_core::day::days_of_period(from_ms, to_ms);
        // Whole 30-day blocks from score_blocks, the days at either edge from score_days.
        let (b0, b1) = (first.saturating_add(29).div_euclid(30), end.div_euclid(30));
        let (head_end, tail_start, b1) = if b0 < b1 {
            (b0 * 30, b1 * 30, b1)
        } else {
            (end, end, b0)
        };
        self.read(|db| {
            db.query(
                "SELECT unit, SUM(points), SUM(lines)::BIGINT FROM (
                     SELECT unit, points, lines FROM score_days
                     WHERE (day >= $1 AND day < $2) OR (day >= $3 AND day < $4)
                     UNION ALL
                     SELECT unit, points, lines FROM score_blocks WHERE block >= $5 AND block < $6
                 ) AS periods GROUP BY unit HAVING SUM(lines) > 0 ORDER BY unit",
                &[&first, &head_end, &tail_start, &end, &b0, &b1],
            )?
            .iter()
            .map(|r| {
                Ok(ScoreTotal {
                    unit: r.try_get(0)?,
                    points: r.try_get(1)?,
                    lines: count(r, 2)?,
                })
            })
            .collect()
        })
    }

    fn case_counts(&self, from_ms: i64, to_ms: i64, area: &Area) -> StoreResult<Vec<CaseCount>> {
        let (first, end) = gridlink_core::day::days_of_period(from_ms, to_ms);
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
        self.read(|db| {
            db.query(&sql, &args.refs())?
                .iter()
                .map(|r| {
                    Ok(CaseCount {
                        day: r.try_get(0)?,
                        town_id: r.try_get(1)?,
                        category: r.try_get(2)?,
                        closed: r.try_get(3)?,
                        solved_level: r.try_get(4)?,
                        n: count(r, 5)?,
                    })
                })
                .collect()
        })
    }

    fn open_by_grid(&self) -> StoreResult<Vec<(String, u64)>> {
        self.read(|db| {
            db.query(
                "SELECT grid_id, SUM(n)::BIGINT FROM open_cases GROUP BY grid_id HAVING SUM(n) > 0",
                &[],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, count(r, 1)?)))
            .collect()
        })
    }

    fn open_by_level(&self, area: &Area) -> StoreResult<Vec<(String, u64)>> {
        let mut args = Args::default();
        let within = area_clause(area, &mut args, false)
            .map(|c| format!("WHERE {c}"))
            .unwrap_or_default();
        let sql = format!(
            "SELECT level, SUM(n)::BIGINT FROM (
                 SELECT o.level, o.n, g.id AS grid_id, g.village_id, g.town_id
                 FROM open_cases o JOIN grids g ON g.id = o.grid_id) AS open
             {within} GROUP BY level HAVING SUM(n) > 0"
        );
        self.read(|db| {
            db.query(&sql, &args.refs())?
                .iter()
                .map(|r| Ok((r.try_get(0)?, count(r, 1)?)))
                .collect()
        })
    }

    fn overdue_count(&self, now_ms: i64, area: &Area) -> StoreResult<u64> {
        let mut args = Args::default();
        let mut clauses = vec![format!(
            "{OPEN_STATUSES} AND due_at IS NOT NULL AND due_at < {}",
            args.push(now_ms)
        )];
        clauses.extend(area_clause(area, &mut args, false));
        let sql = format!("SELECT COUNT(*) FROM cases WHERE {}", clauses.join(" AND "));
        self.read(|db| count(&db.query_one(&sql, &args.refs())?, 0))
    }

    fn warning_count(&self, now_ms: i64, area: &Area) -> StoreResult<u64> {
        let mut args = Args::default();
        let (warned, due) = (args.push(now_ms), args.push(now_ms));
        let mut clauses = vec![format!(
            "{OPEN_STATUSES} AND warn_at IS NOT NULL AND warn_at <= {warned} AND due_at >= {due}"
        )];
        clauses.extend(area_clause(area, &mut args, false));
        let sql = format!("SELECT COUNT(*) FROM cases WHERE {}", clauses.join(" AND "));
        self.read(|db| count(&db.query_one(&sql, &args.refs())?, 0))
    }
}

impl BlobIndex for PgStore {
    fn photo_owner(&self, hash: &str) -> StoreResult<Option<PhotoCase>> {
        self.read(|db| {
            // The first reference is the owner (`case_photos.id` orders them).
            let Some(r) = db.query_opt(
                "SELECT p.case_id, c.reporter FROM case_photos p LEFT JOIN cases c ON c.id = p.case_id
                 WHERE p.hash = $1 ORDER BY p.id LIMIT 1",
                &[&hash],
            )?
            else {
                return Ok(None);
            };
            let case_id: String = r.try_get(0)?;
            Ok(Some(PhotoCase {
                scopes: scopes_of(db, &case_id)?,
                reporter: r.try_get(1)?,
                case_id,
            }))
        })
    }

    fn blob(&self, hash: &str) -> StoreResult<Option<BlobRow>> {
        self.read(|db| {
            db.query_opt(
                "SELECT hash, size, kind, thumb_of, device_id, received_at FROM blobs WHERE hash = $1",
                &[&hash],
            )?
            .map(|r| blob_row(&r))
            .transpose()
        })
    }

    fn put_blob(&self, blob: &BlobRow) -> StoreResult<()> {
        self.read(|db| {
            db.execute(
                "INSERT INTO blobs (hash, size, kind, thumb_of, device_id, received_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hash) DO NOTHING",
                &[
                    &blob.hash,
                    &i64::try_from(blob.size).unwrap_or(i64::MAX),
                    &blob.kind,
                    &blob.thumb_of,
                    &blob.device_id,
                    &blob.received_at_ms,
                ],
            )?;
            Ok(())
        })
    }

    fn thumbnail_of(&self, photo_hash: &str) -> StoreResult<Option<BlobRow>> {
        self.read(|db| {
            db.query_opt(
                "SELECT hash, size, kind, thumb_of, device_id, received_at FROM blobs
                 WHERE thumb_of = $1 ORDER BY received_at LIMIT 1",
                &[&photo_hash],
            )?
            .map(|r| blob_row(&r))
            .transpose()
        })
    }
}

impl SettingsAudit for PgStore {
    fn audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        self.read(|db| insert_audit(db, entry))
    }

    fn audit_log(&self, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        self.read(|db| {
            db.query(
                "SELECT at, actor, device, action, subject, detail FROM audit ORDER BY id DESC LIMIT $1",
                &[&i64::from(limit)],
            )?
            .iter()
            .map(|r| {
                Ok(AuditEntry {
                    at_ms: r.try_get(0)?,
                    actor: r.try_get(1)?,
                    device: r.try_get(2)?,
                    action: r.try_get(3)?,
                    subject: r.try_get(4)?,
                    detail: r.try_get(5)?,
                })
            })
            .collect()
        })
    }

    fn setting(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.read(|db| {
            db.query_opt("SELECT value FROM settings WHERE key = $1", &[&key])?
                .map(|r| Ok(r.try_get(0)?))
                .transpose()
        })
    }

    fn put_setting(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        self.read(|db| {
            db.execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&key, &value],
            )?;
            Ok(())
        })
    }
}

/// What [`move_from_sqlite`] copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// Tables copied.
    pub tables: usize,
    /// Rows copied.
    pub rows: u64,
}

/// A column's type in both schemas: text, bigint, integer, double, bytea, or a SQLite
/// integer that is a PostgreSQL boolean.
#[derive(Clone, Copy)]
enum Col {
    Text,
    Big,
    Int,
    Real,
    Bytes,
    Bool,
}

/// Every table of the district master, in an order that respects the foreign keys: name,
/// columns (SQLite's `rowid` stands for `case_photos.id`), and whether its first column is an
/// identity whose sequence must continue after the copied values.
type Table = (&'static str, &'static [(&'static str, Col)], bool);

const TABLES: &[Table] = {
    use Col::{Big, Bool, Bytes, Int, Real, Text};
    &[
        (
            "users",
            &[
                ("id", Text),
                ("name", Text),
                ("role", Text),
                ("created_at", Big),
            ],
            false,
        ),
        (
            "grants",
            &[
                ("user_id", Text),
                ("scope", Text),
                ("granted_at", Big),
                ("granted_by", Text),
            ],
            false,
        ),
        (
            "revoked_grants",
            &[("user_id", Text), ("scope", Text), ("revoked_at", Big)],
            false,
        ),
        (
            "enroll_codes",
            &[
                ("code_hash", Text),
                ("user_id", Text),
                ("created_at", Big),
                ("expires_at", Big),
                ("used_at", Big),
                ("device_id", Text),
            ],
            false,
        ),
        (
            "devices",
            &[
                ("id", Text),
                ("user_id", Text),
                ("name", Text),
                ("token_hash", Text),
                ("actor_prefix", Bytes),
                ("enrolled_at", Big),
                ("revoked_at", Big),
            ],
            false,
        ),
        (
            "grids",
            &[("id", Text), ("village_id", Text), ("town_id", Text)],
            false,
        ),
        (
            "documents",
            &[
                ("id", Text),
                ("kind", Text),
                ("heads", Bytes),
                ("base", Bytes),
                ("base_seq", Big),
                ("chunks", Int),
            ],
            false,
        ),
        (
            "changes",
            &[
                ("seq", Big),
                ("doc_id", Text),
                ("device_id", Text),
                ("bytes", Bytes),
                ("at", Big),
            ],
            true,
        ),
        ("doc_scopes", &[("doc_id", Text), ("scope", Text)], false),
        (
            "scope_log",
            &[("pos", Big), ("scope", Text), ("change_seq", Big)],
            true,
        ),
        (
            "cases",
            &[
                ("id", Text),
                ("grid_id", Text),
                ("village_id", Text),
                ("town_id", Text),
                ("category", Text),
                ("source", Text),
                ("status", Text),
                ("level", Text),
                ("assignee", Text),
                ("reporter", Text),
                ("title", Text),
                ("reported_at", Big),
                ("updated_at", Big),
                ("due_at", Big),
                ("closed_at", Big),
                ("solved_level", Text),
                ("flagged", Big),
                ("events", Big),
                ("lat", Real),
                ("lon", Real),
                ("address_id", Text),
                ("description", Text),
                ("warn_at", Big),
            ],
            false,
        ),
        (
            "audit",
            &[
                ("id", Big),
                ("at", Big),
                ("actor", Text),
                ("device", Text),
                ("action", Text),
                ("subject", Text),
                ("detail", Text),
            ],
            true,
        ),
        (
            "blobs",
            &[
                ("hash", Text),
                ("size", Big),
                ("kind", Text),
                ("thumb_of", Text),
                ("device_id", Text),
                ("received_at", Big),
            ],
            false,
        ),
        (
            "case_photos",
            &[("id", Big), ("hash", Text), ("case_id", Text)],
            true,
        ),
        (
            "citizens",
            &[
                ("user_id", Text),
                ("name", Text),
                ("phone_hash", Text),
                ("phone_masked", Text),
                ("registered_at", Big),
            ],
            false,
        ),
        ("settings", &[("key", Text), ("value", Bytes)], false),
        (
            "score_lines",
            &[
                ("case_id", Text),
                ("unit", Text),
                ("points", Real),
                ("reason", Text),
                ("at", Big),
            ],
            false,
        ),
        (
            "score_days",
            &[
                ("unit", Text),
                ("day", Big),
                ("points", Real),
                ("lines", Big),
            ],
            false,
        ),
        (
            "score_blocks",
            &[
                ("unit", Text),
                ("block", Big),
                ("points", Real),
                ("lines", Big),
            ],
            false,
        ),
        (
            "records",
            &[
                ("doc_id", Text),
                ("kind", Text),
                ("grid_id", Text),
                ("subject", Text),
                ("title", Text),
                ("actor", Text),
                ("started_at", Big),
                ("done_at", Big),
                ("updated_at", Big),
            ],
            false,
        ),
        (
            "api_keys",
            &[
                ("key_hash", Text),
                ("name", Text),
                ("scope", Text),
                ("created_at", Big),
                ("created_by", Text),
                ("revoked_at", Big),
            ],
            false,
        ),
        (
            "case_counts",
            &[
                ("day", Big),
                ("town_id", Text),
                ("category", Text),
                ("closed", Bool),
                ("solved_level", Text),
                ("n", Big),
            ],
            false,
        ),
        (
            "open_cases",
            &[("grid_id", Text), ("level", Text), ("n", Big)],
            false,
        ),
        (
            "web_passwords",
            &[("user_id", Text), ("hash", Text), ("set_at", Big)],
            false,
        ),
        (
            "web_sessions",
            &[
                ("token_hash", Text),
                ("user_id", Text),
                ("csrf", Text),
                ("created_at", Big),
                ("expires_at", Big),
            ],
            false,
        ),
    ]
};

fn sqlite_value(
    row: &rusqlite::Row<'_>,
    i: usize,
    col: Col,
) -> rusqlite::Result<Box<dyn ToSql + Sync>> {
    Ok(match col {
        Col::Text => Box::new(row.get::<_, Option<String>>(i)?),
        Col::Big => Box::new(row.get::<_, Option<i64>>(i)?),
        Col::Int => Box::new(
            row.get::<_, Option<i64>>(i)?
                .map(|v| i32::try_from(v).unwrap_or(i32::MAX)),
        ),
        Col::Real => Box::new(row.get::<_, Option<f64>>(i)?),
        Col::Bytes => Box::new(row.get::<_, Option<Vec<u8>>>(i)?),
        Col::Bool => Box::new(row.get::<_, Option<i64>>(i)?.map(|v| v != 0)),
    })
}

/// Copies a SQLite installation's district master (`data_dir/gridlink.sqlite`, brought up to
/// date first) into the PostgreSQL database `url`, whole and in one transaction: the same
/// documents, change and scope logs with the same positions (phones' cursors stay valid), the
/// directory, the roll-ups, the settings (the phone-number pepper, the history id). Refuses a
/// database that already holds users or documents; writes nothing on any error.
pub fn move_from_sqlite(data_dir: &std::path::Path, url: &str) -> StoreResult<Moved> {
    // Brings the SQLite schema up to date (and proves the file is a gridlink database).
    drop(super::SqliteStore::open(data_dir)?);
    let sqlite = rusqlite::Connection::open_with_flags(
        data_dir.join("gridlink.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    let target = PgStore::open(url)?;
    target.with_conn(|conn| {
        let mut tx = conn.client.transaction()?;
        let held: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM users) OR EXISTS (SELECT 1 FROM documents)",
                &[],
            )?
            .try_get(0)?;
        if held {
            return Err(StoreError::Conflict(
                "目标数据库已有数据 / the PostgreSQL database already holds a district".into(),
            ));
        }
        // The SQLite installation's own pepper and history id replace the new database's.
        tx.execute("DELETE FROM settings", &[])?;
        let mut moved = Moved::default();
        for (table, columns, identity) in TABLES {
            let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
            let select: Vec<&str> = names
                .iter()
                .map(|n| {
                    if *table == "case_photos" && *n == "id" {
                        "rowid"
                    } else {
                        n
                    }
                })
                .collect();
            let marks: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
            let insert = tx.prepare(&format!(
                "INSERT INTO {table} ({}) {} VALUES ({})",
                names.join(", "),
                if *identity {
                    "OVERRIDING SYSTEM VALUE"
                } else {
                    ""
                },
                marks.join(", ")
            ))?;
            let mut stmt = sqlite.prepare(&format!(
                "SELECT {} FROM {table} ORDER BY {}",
                select.join(", "),
                select[0]
            ))?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let values = columns
                    .iter()
                    .enumerate()
                    .map(|(i, (_, col))| sqlite_value(row, i, *col))
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| &**v as _).collect();
                tx.execute(&insert, &refs)?;
                moved.rows += 1;
            }
            if *identity {
                let column = names[0];
                tx.execute(
                    &format!(
                        "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                                       COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
                    ),
                    &[],
                )?;
            }
            moved.tables += 1;
        }
        tx.commit()?;
        Ok(moved)
    })
}
