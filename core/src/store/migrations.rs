//! Numbered schema migrations. `PRAGMA user_version` holds the number of the last one applied;
//! each runs in its own transaction together with the bump of that number, so a crash leaves
//! the file at one version or the next, never between.
//!
//! To change the schema, add `NNNN_name.sql` here and a line to [`MIGRATIONS`]; never edit a
//! migration that has shipped. `core/tests/integration/store.rs` upgrades a frozen copy of
//! every old schema and compares it with a fresh database.

use crate::error::{Error, Result};
use crate::search::index_terms;
use rusqlite::{Connection, Transaction, params};

struct Migration {
    sql: &'static str,
    /// Data work that SQL alone cannot do (e.g. computing search terms in Rust).
    after: Option<fn(&Transaction<'_>) -> Result<()>>,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        sql: include_str!("migrations/0001_init.sql"),
        after: None,
    },
    Migration {
        sql: include_str!("migrations/0002_search_quarantine.sql"),
        after: Some(backfill_search),
    },
    Migration {
        sql: include_str!("migrations/0003_sync.sql"),
        after: None,
    },
    Migration {
        sql: include_str!("migrations/0004_photos.sql"),
        after: None,
    },
    Migration {
        sql: include_str!("migrations/0005_records.sql"),
        after: None,
    },
];

/// The schema version this build creates.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database to [`SCHEMA_VERSION`].
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(Error::DatabaseTooNew {
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
    Ok(())
}

fn backfill_search(tx: &Transaction<'_>) -> Result<()> {
    let mut select = tx.prepare("SELECT rowid, title, description FROM cases")?;
    let mut insert = tx.prepare("INSERT INTO case_search (rowid, terms) VALUES (?1, ?2)")?;
    let mut rows = select.query([])?;
    while let Some(row) = rows.next()? {
        let (rowid, title, description): (i64, String, String) =
            (row.get(0)?, row.get(1)?, row.get(2)?);
        insert.execute(params![
            rowid,
            index_terms(&format!("{title} {description}"))
        ])?;
    }
    Ok(())
}
