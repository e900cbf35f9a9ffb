//! Backup and restore of an installation on SQLite (`gridlink-server backup` and `restore`).
//!
//! A backup is one SQLite file that standard tools read (`sqlite3 FILE`): a consistent copy
//! of the database, written by `VACUUM INTO` inside one read transaction, so syncs, uploads
//! and the command centre carry on while it is taken; and in it two tables of its own:
//! `backup_blobs`, every photo and thumbnail the copy's `blobs` rows name, read from the blob
//! directory after the copy (a row is written only once its file is complete and blobs are
//! never changed, so every file the copy names is there), and `backup_meta` (when, what
//! schema, how much). It is written beside its destination and renamed into place, so a
//! backup file is always whole.
//!
//! A restore writes into a data directory that holds no database: each blob back to its file
//! (checked against its hash), then the database without the two tables, with a new
//! *history id* ([`HISTORY_SETTING`](super::HISTORY_SETTING)). Phones compare that id at
//! every sync: one that synced after the backup was taken learns that the server went back in
//! time, pulls everything again and pushes again what the server lost (ADR 0013).

use super::sqlite::SCHEMA_VERSION;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::{Path, PathBuf};

/// The database file in a data directory.
const DATABASE: &str = "gridlink.sqlite";

/// Why a backup or a restore did not happen. Nothing was left half-written.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The data directory holds no installation.
    #[error("{0} 中没有数据库 / there is no database in {0}")]
    NoInstallation(PathBuf),
    /// The restore target already holds a database: a restore never writes over one.
    #[error(
        "{0} 中已有数据库，恢复只写入空的数据目录 / {0} already holds a database: restore into an empty data directory"
    )]
    TargetInUse(PathBuf),
    /// The file is not a gridlink backup (or not a whole one).
    #[error("{0} 不是 gridlink 备份文件 / {0} is not a gridlink backup: {1}")]
    NotABackup(PathBuf, String),
    /// The backup was taken by a newer server than this one.
    #[error(
        "备份的数据库版本 {found} 高于本程序支持的 {supported}，请用新版程序恢复 / the backup's schema {found} is newer than this binary's {supported}: restore with a newer one"
    )]
    TooNew {
        /// The backup's schema.
        found: i64,
        /// This binary's.
        supported: i64,
    },
    /// A blob in the backup does not match its hash: the file is damaged.
    #[error("备份中的照片 {0} 已损坏 / photo {0} in the backup is damaged")]
    DamagedBlob(String),
    /// A blob the database names is missing from the blob directory.
    #[error("照片 {0} 在数据目录中缺失 / photo {0} is missing from the data directory")]
    MissingBlob(String),
    /// The database failed.
    #[error("数据库错误 / database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A file could not be read or written.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// What a backup or a restore copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    /// Documents in the copy.
    pub docs: u64,
    /// Photos and thumbnails.
    pub blobs: u64,
    /// Size of the backup file, bytes.
    pub bytes: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |e| BackupError::Io(path.to_owned(), e)
}

fn blob_path(data_dir: &Path, hash: &str) -> PathBuf {
    data_dir
        .join("blobs")
        .join("sha256")
        .join(&hash[..2])
        .join(hash)
}

/// Writes a backup of the installation in `data_dir` to `to` (see the module docs), while the
/// server may be running.
pub fn backup(data_dir: &Path, to: &Path) -> Result<Copied, BackupError> {
    let database = data_dir.join(DATABASE);
    if !database.exists() {
        return Err(BackupError::NoInstallation(data_dir.to_owned()));
    }
    let partial = partial_path(to);
    remove_if_there(&partial)?;
    let live = Connection::open_with_flags(&database, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    live.busy_timeout(std::time::Duration::from_secs(30))?;
    live.execute("VACUUM INTO ?1", [partial.to_string_lossy()])?;
    drop(live);
    let written = (|| {
        let copy = Connection::open(&partial)?;
        copy.execute_batch(
            "PRAGMA journal_mode = DELETE;
             CREATE TABLE backup_blobs (hash TEXT PRIMARY KEY, bytes BLOB NOT NULL) STRICT;
             CREATE TABLE backup_meta (key TEXT PRIMARY KEY, value ANY) STRICT;",
        )?;
        let tx = copy.unchecked_transaction()?;
        let hashes: Vec<String> = {
            let mut stmt = tx.prepare("SELECT hash FROM blobs ORDER BY hash")?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        {
            let mut put = tx.prepare("INSERT INTO backup_blobs (hash, bytes) VALUES (?1, ?2)")?;
            for hash in &hashes {
                if !crate::blobs::is_hash(hash) {
                    return Err(BackupError::MissingBlob(hash.clone()));
                }
                let path = blob_path(data_dir, hash);
                let bytes = match std::fs::read(&path) {
                    Ok(bytes) => bytes,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(BackupError::MissingBlob(hash.clone()));
                    }
                    Err(e) => return Err(BackupError::Io(path, e)),
                };
                put.execute(params![hash, bytes])?;
            }
        }
        let docs: i64 = tx.query_row("SELECT COUNT(*) FROM documents", [], |r| r.get(0))?;
        let schema: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        {
            let mut meta = tx.prepare("INSERT INTO backup_meta (key, value) VALUES (?1, ?2)")?;
            meta.execute(params!["format", "gridlink-backup-1"])?;
            meta.execute(params!["schema", schema])?;
            meta.execute(params!["taken_at_ms", crate::state::now_ms()])?;
            meta.execute(params!["docs", docs])?;
            meta.execute(params!["blobs", hashes.len() as i64])?;
        }
        tx.commit()?;
        copy.close().map_err(|(_, e)| e)?;
        Ok(Copied {
            docs: u64::try_from(docs).unwrap_or(0),
            blobs: hashes.len() as u64,
            bytes: 0,
        })
    })();
    let mut copied = match written {
        Ok(copied) => copied,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    sync_file(&partial)?;
    std::fs::rename(&partial, to).map_err(io(to))?;
    sync_parent(to)?;
    copied.bytes = std::fs::metadata(to).map_err(io(to))?.len();
    Ok(copied)
}

/// Restores the backup `from` into `data_dir`, which must hold no database (see the module
/// docs). The restored installation has a new history id.
pub fn restore(from: &Path, data_dir: &Path) -> Result<Copied, BackupError> {
    let database = data_dir.join(DATABASE);
    if database.exists() {
        return Err(BackupError::TargetInUse(data_dir.to_owned()));
    }
    let not_a_backup = |why: String| BackupError::NotABackup(from.to_owned(), why);
    if !from.is_file() {
        return Err(not_a_backup("no such file".into()));
    }
    let source = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let format: Option<String> = source
        .query_row(
            "SELECT value FROM backup_meta WHERE key = 'format'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| not_a_backup(e.to_string()))?;
    if format.as_deref() != Some("gridlink-backup-1") {
        return Err(not_a_backup(format!("format {format:?}")));
    }
    let schema: i64 = source.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if schema > SCHEMA_VERSION {
        return Err(BackupError::TooNew {
            found: schema,
            supported: SCHEMA_VERSION,
        });
    }
    let check: String = source.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(not_a_backup(check));
    }
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    // The blobs first: a database whose rows name missing files would be worse than a
    // directory of files no database names (which the next start ignores).
    let mut blobs = 0;
    {
        let mut stmt = source.prepare("SELECT hash, bytes FROM backup_blobs ORDER BY hash")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let hash: String = row.get(0)?;
            let bytes: Vec<u8> = row.get(1)?;
            if !crate::blobs::is_hash(&hash) || gridlink_core::photo::sha256_hex(&bytes) != hash {
                return Err(BackupError::DamagedBlob(hash));
            }
            let path = blob_path(data_dir, &hash);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io(dir))?;
            }
            write_synced(&path, &bytes)?;
            blobs += 1;
        }
    }
    let partial = partial_path(&database);
    remove_if_there(&partial)?;
    source.execute("VACUUM INTO ?1", [partial.to_string_lossy()])?;
    drop(source);
    let finished = (|| {
        let copy = Connection::open(&partial)?;
        copy.execute_batch("DROP TABLE backup_blobs; DROP TABLE backup_meta;")?;
        copy.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![super::HISTORY_SETTING, new_history_id().into_bytes()],
        )?;
        copy.execute_batch("VACUUM")?;
        let docs: i64 = copy.query_row("SELECT COUNT(*) FROM documents", [], |r| r.get(0))?;
        copy.close().map_err(|(_, e)| e)?;
        Ok::<_, BackupError>(docs)
    })();
    let docs = match finished {
        Ok(docs) => docs,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    sync_file(&partial)?;
    std::fs::rename(&partial, &database).map_err(io(&database))?;
    sync_parent(&database)?;
    Ok(Copied {
        docs: u64::try_from(docs).unwrap_or(0),
        blobs,
        bytes: std::fs::metadata(from).map_err(io(from))?.len(),
    })
}

/// A fresh history id: 128 random bits, as a UUID.
pub fn new_history_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Marks a store restored by outside tools (PostgreSQL's `pg_restore`, a base backup): a new
/// history id, audited as `restored` by `actor`, so phones that synced after the copy was taken
/// push again what it lacks. `gridlink-server restored` runs it; the new id is returned.
pub fn start_new_history(
    store: &dyn super::ServerStore,
    actor: &str,
) -> Result<String, super::StoreError> {
    let id = new_history_id();
    store.put_setting(super::HISTORY_SETTING, id.as_bytes())?;
    store.audit(&super::AuditEntry {
        at_ms: crate::state::now_ms(),
        actor: actor.to_owned(),
        device: None,
        action: "restored".into(),
        subject: super::HISTORY_SETTING.into(),
        detail: id.clone(),
    })?;
    Ok(id)
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

fn remove_if_there(path: &Path) -> Result<(), BackupError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(BackupError::Io(path.to_owned(), e)),
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    use std::io::Write;
    let mut file = std::fs::File::create(path).map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

fn sync_file(path: &Path) -> Result<(), BackupError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path))
}

fn sync_parent(path: &Path) -> Result<(), BackupError> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(io(dir)),
        None => Ok(()),
    }
}
