//! Case lists from the index rows: the filters a phone's screens need, Chinese text search,
//! and keyset paging with a stable order (a case that changes while the user pages does not
//! make another case appear twice or vanish from the pages already read).

use crate::case::{Case, Category, Level, Status};
use crate::error::Result;
use crate::search;
use rusqlite::{Connection, OptionalExtension, params, types::Value};

/// Which cases to list. Every filter that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseFilter {
    /// Any of these statuses (all when empty).
    pub statuses: Vec<Status>,
    /// Only cases that still need action (reported, accepted, dispatched, handling).
    pub open_only: bool,
    /// Any of these grids (all when empty).
    pub grid_ids: Vec<String>,
    /// This category.
    pub category: Option<Category>,
    /// This assignee key (`user:<id>`, `dept:<code>`, `enf:<code>`).
    pub assignee: Option<String>,
    /// Assigned to the signed-in user.
    pub assigned_to_me: bool,
    /// Reported by the signed-in user.
    pub reported_by_me: bool,
    /// Open cases due before this time, UTC ms ("due soon", "overdue").
    pub due_before_ms: Option<i64>,
    /// Words or characters in the title or description.
    pub text: Option<String>,
}

/// The order of a list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CaseOrder {
    /// Most recently changed first.
    #[default]
    UpdatedDesc,
    /// Most recently reported first.
    CreatedDesc,
    /// Earliest deadline first; cases without one last.
    DueAsc,
}

/// Where the next page starts: the sort key and id of the last case of the previous page.
/// Handed to screens as the text `key:id` ([`Display`](std::fmt::Display), [`FromStr`](std::str::FromStr)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageCursor {
    /// Sort key of the last row.
    pub key: i64,
    /// Id of the last row.
    pub id: String,
}

impl std::fmt::Display for PageCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.key, self.id)
    }
}

/// A page marker that no list made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "翻页标记无效，请从第一页重新加载 / the page marker is invalid: reload from the first page"
)]
pub struct BadPageCursor;

impl std::str::FromStr for PageCursor {
    type Err = BadPageCursor;

    fn from_str(token: &str) -> std::result::Result<PageCursor, BadPageCursor> {
        let (key, id) = token.split_once(':').ok_or(BadPageCursor)?;
        Ok(PageCursor {
            key: key.parse().map_err(|_| BadPageCursor)?,
            id: id.to_owned(),
        })
    }
}

/// A list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseQuery {
    /// Which cases.
    pub filter: CaseFilter,
    /// In which order.
    pub order: CaseOrder,
    /// Page size (1–500).
    pub limit: u32,
    /// Continue after this row.
    pub after: Option<PageCursor>,
}

impl Default for CaseQuery {
    fn default() -> Self {
        CaseQuery {
            filter: CaseFilter::default(),
            order: CaseOrder::default(),
            limit: 50,
            after: None,
        }
    }
}

/// One row of a case list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseSummary {
    /// Case id.
    pub id: String,
    /// One line.
    pub title: String,
    /// Category.
    pub category: Category,
    /// Status.
    pub status: Status,
    /// Level that holds it.
    pub level: Level,
    /// Grid.
    pub grid_id: String,
    /// Assignee key.
    pub assignee: Option<String>,
    /// Reporter's user id.
    pub reporter: Option<String>,
    /// Reported at, UTC ms.
    pub created_at_ms: i64,
    /// Last event at, UTC ms.
    pub updated_at_ms: i64,
    /// Deadline, UTC ms.
    pub due_at_ms: Option<i64>,
    /// Number of events kept but not applied (shown as a warning).
    pub flagged: u32,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasePage {
    /// The rows.
    pub items: Vec<CaseSummary>,
    /// Cursor for the next page; `None` on the last page.
    pub next: Option<PageCursor>,
}

const MAX_LIMIT: u32 = 500;

pub(super) fn list(conn: &Connection, query: &CaseQuery, me: &str) -> Result<CasePage> {
    let f = &query.filter;
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    let push =
        |clause: String, values: Vec<Value>, clauses: &mut Vec<String>, args: &mut Vec<Value>| {
            clauses.push(clause);
            args.extend(values);
        };

    let statuses: Vec<Status> = if f.open_only {
        let open: Vec<Status> = Status::ALL.into_iter().filter(|s| s.is_open()).collect();
        if f.statuses.is_empty() {
            open
        } else {
            f.statuses
                .iter()
                .copied()
                .filter(|s| open.contains(s))
                .collect()
        }
    } else {
        f.statuses.clone()
    };
    if f.open_only && statuses.is_empty() {
        return Ok(CasePage {
            items: Vec::new(),
            next: None,
        });
    }
    if !statuses.is_empty() {
        push(
            format!("status IN ({})", placeholders(statuses.len())),
            statuses
                .iter()
                .map(|s| Value::Text(s.code().into()))
                .collect(),
            &mut clauses,
            &mut args,
        );
    }
    if !f.grid_ids.is_empty() {
        push(
            format!("grid_id IN ({})", placeholders(f.grid_ids.len())),
            f.grid_ids.iter().map(|g| Value::Text(g.clone())).collect(),
            &mut clauses,
            &mut args,
        );
    }
    if let Some(category) = f.category {
        push(
            "category = ?".into(),
            vec![Value::Text(category.code().into())],
            &mut clauses,
            &mut args,
        );
    }
    if let Some(assignee) = &f.assignee {
        push(
            "assignee = ?".into(),
            vec![Value::Text(assignee.clone())],
            &mut clauses,
            &mut args,
        );
    }
    if f.assigned_to_me {
        push(
            "assignee = ?".into(),
            vec![Value::Text(format!("user:{me}"))],
            &mut clauses,
            &mut args,
        );
    }
    if f.reported_by_me {
        push(
            "reporter = ?".into(),
            vec![Value::Text(me.to_owned())],
            &mut clauses,
            &mut args,
        );
    }
    if let Some(due) = f.due_before_ms {
        push(
            "due_at IS NOT NULL AND due_at < ? AND status IN ('reported', 'accepted', 'dispatched', 'handling')".into(),
            vec![Value::Integer(due)],
            &mut clauses,
            &mut args,
        );
    }
    if let Some(text) = f.text.as_deref().filter(|t| !t.trim().is_empty()) {
        let q = search::query(text);
        if let Some(fts) = q.fts {
            push(
                "rowid IN (SELECT rowid FROM case_search WHERE case_search MATCH ?)".into(),
                vec![Value::Text(fts)],
                &mut clauses,
                &mut args,
            );
        }
        for c in q.singles {
            let pattern = format!("%{c}%");
            push(
                "(title LIKE ? OR description LIKE ?)".into(),
                vec![Value::Text(pattern.clone()), Value::Text(pattern)],
                &mut clauses,
                &mut args,
            );
        }
    }

    let (key, direction) = match query.order {
        CaseOrder::UpdatedDesc => ("updated_at", "DESC"),
        CaseOrder::CreatedDesc => ("created_at", "DESC"),
        CaseOrder::DueAsc => ("COALESCE(due_at, 9223372036854775807)", "ASC"),
    };
    if let Some(after) = &query.after {
        let cmp = if direction == "DESC" { "<" } else { ">" };
        push(
            format!("({key} {cmp} ? OR ({key} = ? AND doc_id > ?))"),
            vec![
                Value::Integer(after.key),
                Value::Integer(after.key),
                Value::Text(after.id.clone()),
            ],
            &mut clauses,
            &mut args,
        );
    }
    let limit = query.limit.clamp(1, MAX_LIMIT);
    let where_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let sql = format!(
        "SELECT doc_id, title, category, status, level, grid_id, assignee, reporter, created_at, updated_at,
                due_at, flagged, {key}
         FROM cases {where_sql} ORDER BY {key} {direction}, doc_id ASC LIMIT {}",
        limit + 1
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
    let mut items = Vec::with_capacity(limit as usize);
    let mut keys = Vec::with_capacity(limit as usize);
    while let Some(row) = rows.next()? {
        let text = |i: usize| -> rusqlite::Result<String> { row.get(i) };
        items.push(CaseSummary {
            id: text(0)?,
            title: text(1)?,
            category: Category::from_code(&text(2)?).unwrap_or(Category::Other),
            status: Status::from_code(&text(3)?).unwrap_or(Status::Reported),
            level: Level::from_code(&text(4)?).unwrap_or(Level::Grid),
            grid_id: text(5)?,
            assignee: row.get(6)?,
            reporter: row.get(7)?,
            created_at_ms: row.get(8)?,
            updated_at_ms: row.get(9)?,
            due_at_ms: row.get(10)?,
            flagged: row.get(11)?,
        });
        keys.push(row.get::<_, i64>(12)?);
    }
    let next = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|last| PageCursor {
            key: keys[limit as usize - 1],
            id: last.id.clone(),
        })
    } else {
        None
    };
    Ok(CasePage { items, next })
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Rewrites the index row and search terms of a case.
pub(super) fn write_index_row(conn: &Connection, case: &Case) -> Result<()> {
    let (d, s) = (&case.details, &case.state);
    let flagged = u32::try_from(s.flagged.len()).unwrap_or(u32::MAX);
    let rowid: i64 = conn.prepare_cached(
        "INSERT INTO cases (doc_id, status, level, category, source, grid_id, address_id, assignee, reporter,
                            title, description, created_at, updated_at, due_at, solved_level, flagged)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
         ON CONFLICT (doc_id) DO UPDATE SET
            status = excluded.status, level = excluded.level, category = excluded.category,
            source = excluded.source, grid_id = excluded.grid_id, address_id = excluded.address_id,
            assignee = excluded.assignee, reporter = excluded.reporter, title = excluded.title,
            description = excluded.description, created_at = excluded.created_at,
            updated_at = excluded.updated_at, due_at = excluded.due_at,
            solved_level = excluded.solved_level, flagged = excluded.flagged
         RETURNING rowid",
    )?
    .query_row(
        params![
            d.id,
            s.status.code(),
            s.level.code(),
            d.category.code(),
            d.source.code(),
            d.grid_id,
            d.address_id,
            s.assignee,
            s.reporter,
            d.title,
            d.description,
            s.reported_at_ms.unwrap_or(s.updated_at_ms),
            s.updated_at_ms,
            s.due_at_ms,
            s.solved_level.map(Level::code),
            flagged,
        ],
        |r| r.get(0),
    )?;
    // Title and description are written once, at the report, so the search terms rarely change:
    // compare before rewriting, since an FTS5 delete + insert is the costliest write here.
    let terms = search::index_terms(&format!("{} {}", d.title, d.description));
    let current: Option<String> = conn
        .prepare_cached("SELECT terms FROM case_search WHERE rowid = ?1")?
        .query_row([rowid], |r| r.get(0))
        .optional()?;
    if current.as_deref() != Some(terms.as_str()) {
        conn.prepare_cached("DELETE FROM case_search WHERE rowid = ?1")?
            .execute([rowid])?;
        conn.prepare_cached("INSERT INTO case_search (rowid, terms) VALUES (?1, ?2)")?
            .execute(params![rowid, terms])?;
    }
    Ok(())
}
