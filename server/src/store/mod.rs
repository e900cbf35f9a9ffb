//! The server's storage, behind the backend-neutral [`ServerStore`] trait.
//!
//! The embedded backend is SQLite ([`SqliteStore`], one file in the data directory). A
//! PostgreSQL backend is planned for deployments that outgrow one machine; the trait therefore
//! speaks in domain terms (users, grants, devices, merges, pull pages), never in SQL, and the
//! conformance tests in `server/tests/integration/store.rs` are written against the trait.
//!
//! Methods are blocking; the HTTP layer calls them from `spawn_blocking`.

pub mod backup;
pub mod postgres;
pub mod rollups;
mod sql;
mod sqlite;

pub use postgres::{PgStore, SCHEMA_VERSION as PG_SCHEMA_VERSION};
pub use sqlite::{SCHEMA_VERSION as SQLITE_SCHEMA_VERSION, SqliteStore};

use automerge::ChangeHash;
use gridlink_core::case::{Case, Role};
use gridlink_core::sync::scope::{GridPlace, ScopeKey};
use gridlink_core::sync::wire::PulledDoc;
use std::collections::BTreeSet;

/// A storage failure. Details go to the log; clients see a generic 500, or 507/503 with
/// `Retry-After` for a full disk or an unreachable database.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Any other failure of the storage (details for the log).
    #[error("database: {0}")]
    Database(String),
    /// Something the caller named does not exist.
    #[error("找不到 {0} / not found: {0}")]
    NotFound(String),
    /// The request conflicts with what is stored (a user id already taken, a code used).
    #[error("{0}")]
    Conflict(String),
    /// The disk holding the database is full: nothing was written; retry once space is freed.
    #[error("服务器存储空间已满 / the server's storage is full: {0}")]
    Full(String),
    /// The database cannot be reached now (locked, its file or server unreachable, an I/O
    /// fault): nothing was written; retry later.
    #[error("服务器数据库暂时不可用 / the server's database is unavailable: {0}")]
    Unavailable(String),
    /// A document moved since the merge that writes it was computed: the stored heads are not
    /// the ones the merge started from (another writer committed first). Nothing was written;
    /// load the document again and merge anew.
    #[error(
        "文档 {doc_id} 已被其他写入更新，请重试 / document {doc_id} changed since it was read: retry"
    )]
    Stale {
        /// The document.
        doc_id: String,
    },
    /// Stored data is damaged (a file that is not a database, a row that does not decode).
    #[error("服务器数据已损坏 / stored data is damaged: {0}")]
    Corrupt(String),
    /// The data directory was written by a newer server.
    #[error(
        "数据目录的版本 {found} 高于本程序支持的 {supported} / the data directory has schema {found}, newer than this server's {supported}"
    )]
    TooNew {
        /// Found.
        found: i64,
        /// Supported.
        supported: i64,
    },
}

/// Shorthand.
pub type StoreResult<T> = Result<T, StoreError>;

/// A user of the district system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable id (`insp-0001`).
    pub id: String,
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
}

/// A registered device, as a request authenticates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuth {
    /// Device id (UUID).
    pub device_id: String,
    /// Its user.
    pub user: User,
    /// The actor prefix issued at enrollment.
    pub actor_prefix: Vec<u8>,
}

/// A device to register when an enrollment code is redeemed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDevice {
    /// Device id (UUID) chosen by the phone.
    pub id: String,
    /// A name people recognise.
    pub name: String,
    /// SHA-256 (hex) of the bearer token.
    pub token_hash: String,
    /// Random actor prefix.
    pub actor_prefix: Vec<u8>,
}

/// A stored document as the merge layer loads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDoc {
    /// Base save followed by every change chunk since (Automerge bytes).
    pub bytes: Vec<u8>,
    /// Scope keys recorded for it.
    pub scopes: BTreeSet<ScopeKey>,
    /// Change chunks appended since the base was written.
    pub chunks: u32,
}

/// The query row of a case, rewritten with every merge.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseRow {
    /// Case id.
    pub id: String,
    /// Grid, village, town.
    pub place: GridPlace,
    /// Category code.
    pub category: String,
    /// Source code.
    pub source: String,
    /// Status code.
    pub status: String,
    /// Level code.
    pub level: String,
    /// Who must act.
    pub assignee: Option<String>,
    /// Reporter user id.
    pub reporter: Option<String>,
    /// One line.
    pub title: String,
    /// Device times, UTC ms.
    pub reported_at: i64,
    /// Latest event time.
    pub updated_at: i64,
    /// Deadline.
    pub due_at: Option<i64>,
    /// When it goes into warning (预警): the share of its time the rules set is spent.
    pub warn_at: Option<i64>,
    /// When closed.
    pub closed_at: Option<i64>,
    /// The level that solved it.
    pub solved_level: Option<String>,
    /// Events kept but not applied.
    pub flagged: i64,
    /// Events in the history.
    pub events: i64,
    /// Where it is (WGS-84), if located.
    pub point: Option<gridlink_core::geo::LatLon>,
    /// Standard address code.
    pub address_id: Option<String>,
    /// Free text.
    pub description: String,
}

impl CaseRow {
    /// The row of a folded case at its place; its deadline from the events or `limits`.
    pub fn of(case: &Case, place: &GridPlace, limits: &gridlink_core::case::TimeLimits) -> CaseRow {
        let (d, s) = (&case.details, &case.state);
        CaseRow {
            id: d.id.clone(),
            place: place.clone(),
            category: d.category.code().to_owned(),
            source: d.source.code().to_owned(),
            status: s.status.code().to_owned(),
            level: s.level.code().to_owned(),
            assignee: s.assignee.clone(),
            reporter: s.reporter.clone(),
            title: d.title.clone(),
            reported_at: s.reported_at_ms.unwrap_or(s.updated_at_ms),
            updated_at: s.updated_at_ms,
            // The deadline it is held to now: explicit, or by the time-limit table.
            due_at: gridlink_core::case::deadline(case, limits),
            warn_at: gridlink_core::case::warn_at(case, limits),
            closed_at: s.closed_at_ms,
            solved_level: s.solved_level.map(|l| l.code().to_owned()),
            flagged: i64::try_from(s.flagged.len()).unwrap_or(i64::MAX),
            events: i64::try_from(case.history.len()).unwrap_or(i64::MAX),
            point: d.location.map(|l| l.point),
            address_id: d.address_id.clone(),
            description: d.description.clone(),
        }
    }
}

/// One accepted document change, to commit.
#[derive(Debug, Clone)]
pub struct Merge {
    /// The document.
    pub doc_id: String,
    /// Device that pushed it (`server` for the server's own actions and imports).
    pub device_id: String,
    /// The new changes (Automerge bytes that follow everything stored before).
    pub changes: Vec<u8>,
    /// Heads after the merge.
    pub heads: Vec<ChangeHash>,
    /// The stored heads the merge started from (empty: the document must not exist yet);
    /// `commit` refuses with [`StoreError::Stale`] when they are not the stored ones. `None`
    /// only for the server's own imports of whole documents, which replace what is stored.
    pub base_heads: Option<Vec<ChangeHash>>,
    /// All scope keys of the document after the merge.
    pub scopes: BTreeSet<ScopeKey>,
    /// The keys it did not have before (all of them for a new document): its earlier changes
    /// are added to those keys' logs.
    pub new_scopes: BTreeSet<ScopeKey>,
    /// The materialized row of a case.
    pub row: Option<CaseRow>,
    /// The summary of a record (address, visit, mediation file, template).
    pub record: Option<gridlink_core::sync::records::RecordSummary>,
    /// A full save to become the new base (compaction), if the merger decided so.
    pub compacted: Option<Vec<u8>>,
    /// Photo hashes the case's events reference (all of them; recording is idempotent).
    pub photos: Vec<String>,
    /// The case's score lines (all of them; they replace the stored ones).
    pub scores: Vec<gridlink_core::case::ScoreLine>,
}

/// An Open311 API key (only its hash is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Who the key is for (a hotline, another district's system).
    pub name: String,
    /// What it may read and write: `district` or `town:ID`.
    pub scope: ScopeKey,
    /// Issued, UTC ms.
    pub created_at: i64,
    /// Revoked keys are refused.
    pub revoked: bool,
}

/// The part of the district a viewer sees: the one rule, in `gridlink_core::sync::visibility`.
pub use gridlink_core::sync::visibility::Area;

/// Which case rows a list shows (the command centre's list and exports, Open311 `GET
/// requests`): always within `area`; every other field narrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseFilter {
    /// What the viewer may see.
    pub area: Area,
    /// Status codes (none: any).
    pub statuses: Vec<String>,
    /// Only these case ids (none: any).
    pub ids: Vec<String>,
    /// Category codes (none: any).
    pub categories: Vec<String>,
    /// Level code.
    pub level: Option<String>,
    /// Source code.
    pub source: Option<String>,
    /// Town.
    pub town_id: Option<String>,
    /// Grid.
    pub grid_id: Option<String>,
    /// Only open cases whose deadline passed before this time, UTC ms.
    pub overdue_at: Option<i64>,
    /// Only open cases in warning at this time (warning reached, deadline not passed), UTC ms.
    pub warning_at: Option<i64>,
    /// Reported at or after, UTC ms.
    pub from_ms: Option<i64>,
    /// Reported before, UTC ms.
    pub to_ms: Option<i64>,
    /// Words the case's number (its id or the start of it), title, description, address code
    /// or reporter contains (case-insensitive for Latin letters).
    pub text: Option<String>,
    /// The order of the rows.
    pub order: CaseOrder,
    /// At most this many, in `order`.
    pub limit: u32,
    /// After skipping this many.
    pub offset: u32,
}

/// The order of a case list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CaseOrder {
    /// Newest report first.
    #[default]
    ReportedDesc,
    /// Oldest report first.
    ReportedAsc,
    /// Nearest deadline first; cases without one last.
    DueAsc,
    /// Most recently changed first.
    UpdatedDesc,
}

impl CaseOrder {
    /// Every order.
    pub const ALL: [CaseOrder; 4] = [
        CaseOrder::ReportedDesc,
        CaseOrder::ReportedAsc,
        CaseOrder::DueAsc,
        CaseOrder::UpdatedDesc,
    ];

    /// Stable code (the list's `sort` parameter).
    pub fn code(self) -> &'static str {
        match self {
            CaseOrder::ReportedDesc => "reported_desc",
            CaseOrder::ReportedAsc => "reported_asc",
            CaseOrder::DueAsc => "due",
            CaseOrder::UpdatedDesc => "updated_desc",
        }
    }

    /// The order with this code.
    pub fn from_code(code: &str) -> Option<CaseOrder> {
        CaseOrder::ALL.into_iter().find(|o| o.code() == code)
    }

    /// The SQL `ORDER BY` (the same on both backends: `id` breaks ties, and cases without a
    /// deadline sort last whatever the engine does with NULL).
    pub(crate) fn sql(self) -> &'static str {
        match self {
            CaseOrder::ReportedDesc => "reported_at DESC, id",
            CaseOrder::ReportedAsc => "reported_at, id",
            CaseOrder::DueAsc => "(due_at IS NULL), due_at, id",
            CaseOrder::UpdatedDesc => "updated_at DESC, id",
        }
    }
}

/// A search that is the start of a case number (eight or more of a UUID's characters, as an
/// operator reads it over the phone) as the range of ids it selects, `[low, high)`: the id
/// index answers it, where a text search reads every row. None for any other text.
pub(crate) fn number_prefix(text: &str) -> Option<(String, String)> {
    let prefix = text.trim().to_ascii_lowercase();
    let is_number = (8..=36).contains(&prefix.len())
        && prefix.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    if !is_number {
        return None;
    }
    let mut high = prefix.clone().into_bytes();
    // The last character's successor ('9' → ':', 'f' → 'g', '-' → '.'): still ASCII.
    if let Some(last) = high.last_mut() {
        *last += 1;
    }
    Some((prefix, String::from_utf8(high).ok()?))
}

/// A search text as a `LIKE` pattern that matches it anywhere, with `%`, `_` and `\` taken
/// literally (`ESCAPE '\'`).
pub(crate) fn like_anywhere(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.trim().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Cases reported on one day in one town and category, by outcome (the statistics page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseCount {
    /// Day (Asia/Shanghai, days since 1970-01-01).
    pub day: i64,
    /// Town.
    pub town_id: String,
    /// Category code.
    pub category: String,
    /// Closed.
    pub closed: bool,
    /// The level that solved them, if solved.
    pub solved_level: Option<String>,
    /// How many.
    pub n: u64,
}

/// A signed-in operator's web session (the cookie itself is kept only as SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    /// SHA-256 (hex) of the cookie value.
    pub token_hash: String,
    /// The user.
    pub user_id: String,
    /// The session's CSRF token, sent back in every form.
    pub csrf: String,
    /// Opened, UTC ms.
    pub created_at: i64,
    /// Ends, UTC ms.
    pub expires_at: i64,
}

/// The cases reported in a period (统计): the basis of the completion rate and the 721 split.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CaseStats {
    /// Cases reported.
    pub reported: u64,
    /// Of those, closed (completed, or closed as invalid or duplicate).
    pub closed: u64,
    /// Of those, solved (resolved, verified or closed after a fix), by the level code that
    /// solved them.
    pub solved_by_level: std::collections::BTreeMap<String, u64>,
}

impl CaseStats {
    /// Adds one count of cases.
    pub fn add(&mut self, count: &CaseCount) {
        self.reported += count.n;
        if count.closed {
            self.closed += count.n;
        }
        if let Some(level) = &count.solved_level {
            *self.solved_by_level.entry(level.clone()).or_default() += count.n;
        }
    }

    /// Closed over reported (办结率); 1 when nothing was reported.
    pub fn completion_rate(&self) -> f64 {
        if self.reported == 0 {
            1.0
        } else {
            self.closed as f64 / self.reported as f64
        }
    }

    /// Solved cases per share of the "721" split: `[7, 2, 1]` → counts (grid side, departments,
    /// law enforcement).
    pub fn split_721(&self) -> [u64; 3] {
        let mut split = [0; 3];
        for (level, n) in &self.solved_by_level {
            match gridlink_core::case::Level::from_code(level).map(|l| l.split_721()) {
                Some(7) => split[0] += n,
                Some(2) => split[1] += n,
                Some(1) => split[2] += n,
                _ => {}
            }
        }
        split
    }
}

/// A standard address and its last completed visit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoverageRow {
    /// Standard address code.
    pub code: String,
    /// Address text.
    pub text: String,
    /// Check-out time of the last completed visit.
    pub last_visit_ms: Option<i64>,
}

/// Points of one unit over a period.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreTotal {
    /// `person:…`, `grid:…`, `village:…`, `town:…`, `dept:…` or `enf:…`.
    pub unit: String,
    /// Sum of its lines in the period.
    pub points: f64,
    /// Score lines that contributed.
    pub lines: u64,
}

/// A registered citizen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Citizen {
    /// User id (`cit-…`).
    pub user_id: String,
    /// The name given, if any (operators see it; handlers see it masked).
    pub name: Option<String>,
    /// Keyed hash of the phone number, if one was given.
    pub phone_hash: Option<String>,
    /// The phone number masked (138****1234).
    pub phone_masked: Option<String>,
    /// When registered, UTC ms.
    pub registered_at_ms: i64,
}

/// The case that owns a photo, with what decides who may upload or see the photo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoCase {
    /// The case.
    pub case_id: String,
    /// Its scope keys.
    pub scopes: BTreeSet<ScopeKey>,
    /// Its reporter's user id.
    pub reporter: Option<String>,
}

/// A complete blob of the content-addressed store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRow {
    /// SHA-256 (hex), verified.
    pub hash: String,
    /// Size, bytes.
    pub size: u64,
    /// `photo` or `thumb`.
    pub kind: String,
    /// For a thumbnail, the photo it shows.
    pub thumb_of: Option<String>,
    /// The device that completed it.
    pub device_id: String,
    /// When, UTC ms.
    pub received_at_ms: i64,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// UTC ms.
    pub at_ms: i64,
    /// The user (or `cli:<os user>` / `server`).
    pub actor: String,
    /// The device, for pushes.
    pub device: Option<String>,
    /// What (`push`, `push_rejected`, `user_add`, `grant`, `revoke_grant`, `enroll_code`,
    /// `enroll`, `revoke_device`, …).
    pub action: String,
    /// What it was done to (a document, a user, a device).
    pub subject: String,
    /// Details.
    pub detail: String,
}

/// One page of changes in a device's scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullPage {
    /// Documents with their changes, in causal order.
    pub docs: Vec<PulledDoc>,
    /// Position reached in each scope read.
    pub positions: Vec<(ScopeKey, u64)>,
    /// The byte budget ran out before everything was read.
    pub more: bool,
}

/// The server's storage, by concern: every backend implements the six traits below (the
/// conformance suite in `server/tests/integration/store.rs` runs against it with one line),
/// and is then a `ServerStore`, which the server holds as `Arc<dyn ServerStore>`.
pub trait ServerStore:
    DocumentStore
    + Directory
    + CaseQueries
    + Statistics
    + BlobIndex
    + SettingsAudit
    + Send
    + Sync
    + 'static
{
}

impl<T> ServerStore for T where
    T: DocumentStore
        + Directory
        + CaseQueries
        + Statistics
        + BlobIndex
        + SettingsAudit
        + Send
        + Sync
        + 'static
{
}

/// Documents and the change log: what sync reads and the merge writes.
pub trait DocumentStore {
    /// A stored document.
    fn load_doc(&self, doc_id: &str) -> StoreResult<Option<StoredDoc>>;
    /// Commits accepted merges and audit entries in one transaction: change log, scope log,
    /// document rows, materialized case rows. All or nothing: if any merge's
    /// [`base_heads`](Merge::base_heads) are not the stored heads of its document (in the order
    /// of `merges`, so a batch may hold several merges of one document), it fails with
    /// [`StoreError::Stale`] and writes nothing, whatever other writers do concurrently.
    fn commit(&self, merges: &[Merge], audit: &[AuditEntry]) -> StoreResult<()>;
    /// Reads changes after `from` in each scope, in order, skipping changes pushed by
    /// `exclude_device`, until about `max_bytes`.
    ///
    /// **The cursor guarantee:** a reader that pulls again from the cursors it was given never
    /// misses a committed change of its scopes, whatever order concurrent writers (threads,
    /// processes, server nodes) commit in: a position is handed out only once every change at
    /// or before it is committed or abandoned. (SQLite gives this by serialising writers: the
    /// sequence is taken inside the write transaction, so commit order is sequence order.)
    fn pull(
        &self,
        from: &[(ScopeKey, u64)],
        exclude_device: &str,
        max_bytes: u64,
    ) -> StoreResult<PullPage>;
    /// Documents in any of `left` and in none of `kept`.
    fn docs_leaving(&self, left: &[ScopeKey], kept: &[ScopeKey]) -> StoreResult<Vec<String>>;
    /// How many documents are stored.
    fn doc_count(&self) -> StoreResult<u64>;
    /// The sequence number of the newest stored change: it grows with every commit, so a
    /// view computed at one value is current while it stays the same.
    fn change_seq(&self) -> StoreResult<i64>;
    /// The connection pool's figures, for a backend that has one (`/metrics`).
    fn pool(&self) -> Option<PoolStats> {
        None
    }
    /// Rewrites the deadline and warning of every open case's row from its document under
    /// `limits` (the time limits or the holiday calendar changed: [`set_rules`]), in one
    /// transaction; how many rows changed. A document that does not fold keeps its row.
    fn refresh_deadlines(&self, limits: &gridlink_core::case::TimeLimits) -> StoreResult<u64>;
}

/// The district's rules an operator sets (`gridlink-server rules`): the time limits with the
/// holiday calendar and the warning share, and the separation of duties. Kept as JSON in the
/// settings under [`RULES_SETTING`]; each node reads them when it starts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DistrictRules {
    /// Time limits, working days, holidays, warning.
    #[serde(default)]
    pub limits: gridlink_core::case::TimeLimits,
    /// Who may verify and close their own work.
    #[serde(default)]
    pub duties: gridlink_core::case::Duties,
}

/// The setting that holds the [`DistrictRules`].
pub const RULES_SETTING: &str = "district_rules";

/// The district's rules: the stored ones, else the defaults.
pub fn rules(store: &dyn SettingsAudit) -> StoreResult<DistrictRules> {
    match store.setting(RULES_SETTING)? {
        None => Ok(DistrictRules::default()),
        Some(bytes) => rules_from(&bytes),
    }
}

/// The rules in a setting's bytes.
pub(crate) fn rules_from(bytes: &[u8]) -> StoreResult<DistrictRules> {
    serde_json::from_slice(bytes).map_err(|e| {
        StoreError::Database(format!(
            "设置 {RULES_SETTING} 无法读取 / the setting {RULES_SETTING} does not parse: {e}"
        ))
    })
}

/// Stores new rules, audited as `by`'s, and rewrites the deadlines of every open case under
/// them; how many case rows changed. Running nodes read the rules when they start.
pub fn set_rules(store: &dyn ServerStore, rules: &DistrictRules, by: &str) -> StoreResult<u64> {
    let json = serde_json::to_vec(rules).map_err(|e| StoreError::Database(e.to_string()))?;
    store.put_setting(RULES_SETTING, &json)?;
    store.audit(&AuditEntry {
        at_ms: crate::state::now_ms(),
        actor: by.to_owned(),
        device: None,
        action: "set_rules".to_owned(),
        subject: RULES_SETTING.to_owned(),
        detail: String::from_utf8_lossy(&json).chars().take(2_000).collect(),
    })?;
    store.refresh_deadlines(&rules.limits)
}

/// The deadline and warning a case document gives under `limits`, or `None` if it does not
/// fold (it keeps its row; logged).
pub(crate) fn deadlines_of(
    doc_id: &str,
    bytes: &[u8],
    limits: &gridlink_core::case::TimeLimits,
) -> Option<(Option<i64>, Option<i64>)> {
    match gridlink_core::doc::CaseDoc::load(doc_id, bytes).and_then(|d| d.case()) {
        Ok(case) => Some((
            gridlink_core::case::deadline(&case, limits),
            gridlink_core::case::warn_at(&case, limits),
        )),
        Err(e) => {
            tracing::warn!(case = %doc_id, error = %e, "deadline not refreshed");
            None
        }
    }
}

/// A database connection pool's figures since the node started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open and idle.
    pub idle: u64,
    /// Connections lent out now.
    pub in_use: u64,
    /// Connections opened (including after the database came back or moved to a standby).
    pub opened: u64,
    /// Attempts to connect that failed (the database down, or no server taking writes).
    pub connect_failures: u64,
    /// Connections found broken and dropped.
    pub broken: u64,
}

/// The directory: users and their grants, enrollment codes and devices, citizens, the grid
/// directory, Open311 keys, web passwords, sessions and the web's devices.
pub trait Directory {
    /// Adds a user.
    fn add_user(&self, user: &User, by: &str) -> StoreResult<()>;
    /// A user.
    fn user(&self, id: &str) -> StoreResult<Option<User>>;
    /// Grants a scope to a user (idempotent).
    fn grant(&self, user_id: &str, scope: &ScopeKey, by: &str) -> StoreResult<()>;
    /// Withdraws a scope; returns whether it was granted.
    fn revoke_grant(&self, user_id: &str, scope: &ScopeKey, by: &str) -> StoreResult<bool>;
    /// A user's grants.
    fn grants(&self, user_id: &str) -> StoreResult<BTreeSet<ScopeKey>>;
    /// Scopes the user was granted once and no longer is.
    fn revoked_grants(&self, user_id: &str) -> StoreResult<BTreeSet<ScopeKey>>;
    /// Stores a one-time enrollment code (by its hash) for a user, valid until `expires_at_ms`.
    fn add_enroll_code(
        &self,
        user_id: &str,
        code_hash: &str,
        expires_at_ms: i64,
        by: &str,
    ) -> StoreResult<()>;
    /// Redeems a code: registers (or re-registers) the device and uses the code up, atomically.
    /// Unknown, used or expired codes are `NotFound`.
    fn enroll(&self, code_hash: &str, device: &NewDevice, now_ms: i64) -> StoreResult<User>;
    /// The active device holding a token (by hash).
    fn device_by_token(&self, token_hash: &str) -> StoreResult<Option<DeviceAuth>>;
    /// Revokes a device; returns whether it was active.
    fn revoke_device(&self, device_id: &str, by: &str) -> StoreResult<bool>;
    /// Adds or replaces grids.
    fn put_grids(&self, grids: &[GridPlace]) -> StoreResult<()>;
    /// Every grid.
    fn grids(&self) -> StoreResult<Vec<GridPlace>>;
    /// Registers a citizen with their device, atomically. `Conflict` when the device id is
    /// taken or the phone number already has `max_per_phone` registrations.
    fn register_citizen(
        &self,
        citizen: &Citizen,
        device: &NewDevice,
        max_per_phone: u32,
    ) -> StoreResult<()>;
    /// A citizen.
    fn citizen(&self, user_id: &str) -> StoreResult<Option<Citizen>>;

    /// Keeps an Open311 API key by the SHA-256 of its secret.
    fn add_api_key(&self, key_hash: &str, key: &ApiKey, by: &str) -> StoreResult<()>;

    /// The API key with this hash.
    fn api_key(&self, key_hash: &str) -> StoreResult<Option<ApiKey>>;
    /// Sets a user's web password (an argon2 PHC string).
    fn set_web_password(&self, user_id: &str, hash: &str, by: &str) -> StoreResult<()>;
    /// A user's web password (an argon2 PHC string).
    fn web_password(&self, user_id: &str) -> StoreResult<Option<String>>;
    /// Keeps a new web session, removing the expired ones.
    fn add_web_session(&self, session: &WebSession) -> StoreResult<()>;
    /// The unexpired session with this token hash, and its user.
    fn web_session(&self, token_hash: &str, now_ms: i64)
    -> StoreResult<Option<(WebSession, User)>>;
    /// Ends a session (signing out).
    fn end_web_session(&self, token_hash: &str) -> StoreResult<()>;
    /// The device the server records a web user's actions under, registered on first use
    /// with `actor_prefix` (it has no usable token: it never syncs).
    fn web_device(&self, user_id: &str, actor_prefix: &[u8]) -> StoreResult<DeviceAuth>;
}

/// Case rows and records as lists: the command centre, Open311, "my reports", coverage.
pub trait CaseQueries {
    /// The materialized row of a case.
    fn case_row(&self, id: &str) -> StoreResult<Option<CaseRow>>;
    /// The cases a user reported, newest first.
    fn reported_by(&self, user_id: &str, limit: u32) -> StoreResult<Vec<CaseRow>>;
    /// Open cases (not yet solved) whose deadline passed before `now_ms`, oldest deadline first:
    /// all of them, or only those in one of `scopes` (the same scope rows sync reads).
    fn overdue_cases(
        &self,
        now_ms: i64,
        scopes: Option<&BTreeSet<ScopeKey>>,
        limit: u32,
    ) -> StoreResult<Vec<CaseRow>>;

    /// Ids of the record documents of a kind (`address`, `visit`, `mediation`, `template`).
    fn record_ids(&self, kind: &str) -> StoreResult<Vec<String>>;
    /// The standard addresses of a grid with their last completed visit (check-out, UTC
    /// ms), by address code.
    fn coverage(&self, grid_id: &str) -> StoreResult<Vec<CoverageRow>>;
    /// Case rows, newest report first (the command centre's list, Open311 requests).
    fn case_list(&self, filter: &CaseFilter) -> StoreResult<Vec<CaseRow>>;
    /// How many rows `filter` selects, whatever its `limit` and `offset` (the list's total).
    fn case_total(&self, filter: &CaseFilter) -> StoreResult<u64>;
}

/// Statistics and roll-ups: scores, case counts, open and overdue cases of an area.
pub trait Statistics {
    /// Score totals per unit of the lines that count in whole days (Asia/Shanghai): from the
    /// day holding `from_ms` through the day holding the last millisecond before `to_ms`; each
    /// unit as credited (no roll-up).
    fn score_totals(&self, from_ms: i64, to_ms: i64) -> StoreResult<Vec<ScoreTotal>>;
    /// Cases reported on the days of `[from_ms, to_ms)` (whole days, Asia/Shanghai, as for
    /// scores) in an area: how many, how many are closed, and where the solved ones were
    /// solved. (The sum of `case_counts`: no backend writes it.)
    fn case_stats(&self, from_ms: i64, to_ms: i64, area: &Area) -> StoreResult<CaseStats> {
        let mut stats = CaseStats::default();
        for c in self.case_counts(from_ms, to_ms, area)? {
            stats.add(&c);
        }
        Ok(stats)
    }
    /// Cases per day, town, category and outcome, reported on the days of `[from_ms, to_ms)`
    /// (Asia/Shanghai), in `area`.
    fn case_counts(&self, from_ms: i64, to_ms: i64, area: &Area) -> StoreResult<Vec<CaseCount>>;
    /// Open cases (still to be solved) per grid.
    fn open_by_grid(&self) -> StoreResult<Vec<(String, u64)>>;
    /// Open cases in `area` per level holding them.
    fn open_by_level(&self, area: &Area) -> StoreResult<Vec<(String, u64)>>;
    /// How many open cases in `area` passed their deadline before `now_ms`.
    fn overdue_count(&self, now_ms: i64, area: &Area) -> StoreResult<u64>;
    /// How many open cases in `area` are in warning at `now_ms`: warning reached, deadline not
    /// passed ([`gridlink_core::case::Urgency::at`]).
    fn warning_count(&self, now_ms: i64, area: &Area) -> StoreResult<u64>;
}

/// The index of stored blobs (photos and thumbnails) and which case owns each photo.
pub trait BlobIndex {
    /// The case that first referenced a photo: its owner, which alone decides who may upload
    /// or see the photo (so a later case naming the same hash gains nothing).
    fn photo_owner(&self, hash: &str) -> StoreResult<Option<PhotoCase>>;
    /// A complete blob's row.
    fn blob(&self, hash: &str) -> StoreResult<Option<BlobRow>>;
    /// Records a complete blob (idempotent).
    fn put_blob(&self, blob: &BlobRow) -> StoreResult<()>;
    /// The thumbnail blob of a photo.
    fn thumbnail_of(&self, photo_hash: &str) -> StoreResult<Option<BlobRow>>;
}

/// The setting that names this installation's history: made when the server first starts,
/// made anew by every restore from a backup. Phones send back the one they last saw; another
/// one means the server went back in time (a restore), and they pull everything again and
/// push again what it lost (ADR 0013).
pub const HISTORY_SETTING: &str = "history_id";

/// Keyed settings and the audit log.
pub trait SettingsAudit {
    /// Appends to the audit log.
    fn audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// The newest audit entries.
    fn audit_log(&self, limit: u32) -> StoreResult<Vec<AuditEntry>>;
    /// A keyed setting.
    fn setting(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Sets a keyed setting.
    fn put_setting(&self, key: &str, value: &[u8]) -> StoreResult<()>;
}
