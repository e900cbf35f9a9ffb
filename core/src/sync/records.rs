//! Whether a push of a record document (address, visit, mediation file, template) may be
//! merged: the record counterpart of [`check_push`](super::access::check_push).
//!
//! The rules every kind shares: a citizen pushes no records; the document must lie in the
//! pusher's writable scope as the server knew it; its details never change after creation;
//! recorded entries are never changed; every new entry carries the pusher's user, device
//! and role; and each new entry passes its kind's own check on its own. Entries whose
//! validity depends on what happened concurrently elsewhere (a second move-out, a step after
//! a mediation ended) are accepted and left unapplied by the fold, as on every replica.

use super::access::{PLATFORM_DEVICE, Pusher, Refusal};
use super::scope::{GridPlace, ScopeKey, grid_scopes};
use super::wire::RejectCode;
use crate::address::{AddressRecord, may_edit_base, yyyymmdd};
use crate::case::Role;
use crate::checklist::{Answer, VisitStep};
use crate::checklist::{TemplateRecord, VisitRecord, may_patrol, may_publish_templates};
use crate::doc::{DocKind, Entry, RecordDoc};
use crate::mediation::{MediationRecord, MediationStep, may_mediate, mediation_scopes};
use std::collections::{BTreeSet, HashMap};

/// What the server keeps about a record beside its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordSummary {
    /// The kind.
    pub kind: DocKind,
    /// Its grid (none for templates).
    pub grid_id: Option<String>,
    /// What it is about: the address code of an address or a visit; the template id.
    pub subject: Option<String>,
    /// One line for lists: the address text, the template title, the dispute summary.
    pub title: String,
    /// The visit's inspector, or the mediation file's mediator.
    pub actor: Option<String>,
    /// When the visit was checked in (UTC ms).
    pub started_at_ms: Option<i64>,
    /// When the visit was checked out, or the mediation ended.
    pub done_at_ms: Option<i64>,
    /// Latest entry time.
    pub updated_at_ms: i64,
    /// Photo hashes its entries reference (a visit's answers and findings, a mediation
    /// agreement's signatures): the record owns them for upload and reading.
    pub photos: Vec<String>,
}

/// The outcome of an accepted record push.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// The record's scope keys after the push.
    pub scopes: BTreeSet<ScopeKey>,
    /// Entries the push added.
    pub added: u64,
    /// Its index row.
    pub summary: RecordSummary,
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn refuse(code: RejectCode, message: String) -> Refusal {
    Refusal {
        code,
        message,
        event_ids: Vec::new(),
    }
}

fn malformed(doc_id: &str, detail: impl std::fmt::Display) -> Refusal {
    refuse(
        RejectCode::Malformed,
        format!("记录 {doc_id} 无效：{detail} / record {doc_id} is invalid: {detail}"),
    )
}

/// Reads a record's details, entries, scope keys and summary, checking what can be checked on
/// the record alone. `place` looks a grid up.
pub fn inspect(
    doc: &RecordDoc,
    place: &dyn Fn(&str) -> Option<GridPlace>,
    today: u32,
) -> Result<(BTreeSet<ScopeKey>, RecordSummary, Vec<EntryHead>), Refusal> {
    let id = doc.id();
    let bad = |e: crate::Error| malformed(id, e);
    let locate = |grid: &str| {
        place(grid).ok_or_else(|| {
            refuse(
                RejectCode::UnknownGrid,
                format!("没有网格 {grid} / there is no grid {grid}"),
            )
        })
    };
    match doc.kind() {
        DocKind::Case => Err(malformed(id, "not a record")),
        DocKind::Address => {
            let details = doc.details::<AddressRecord>().map_err(bad)?;
            if doc.id() != crate::address::address_doc_id(&details.code) {
                return Err(malformed(id, "the id does not match the address code"));
            }
            details.validate().map_err(|e| malformed(id, e))?;
            let entries = doc.entries::<AddressRecord>().map_err(bad)?;
            let state = crate::address::fold_address(&details, &entries);
            Ok((
                grid_scopes(&locate(&details.grid_id)?),
                RecordSummary {
                    kind: DocKind::Address,
                    grid_id: Some(details.grid_id.clone()),
                    subject: Some(details.code.clone()),
                    title: state.details.text.clone(),
                    actor: None,
                    started_at_ms: None,
                    done_at_ms: None,
                    updated_at_ms: state.updated_at_ms,
                    photos: Vec::new(),
                },
                entry_heads(&entries, today),
            ))
        }
        DocKind::Visit => {
            let details = doc.details::<VisitRecord>().map_err(bad)?;
            if doc.id() != crate::checklist::visit_doc_id(&details.visit_id) {
                return Err(malformed(id, "the id does not match the visit id"));
            }
            details.template.validate().map_err(|e| malformed(id, e))?;
            let entries = doc.entries::<VisitRecord>().map_err(bad)?;
            let visit = crate::checklist::fold_visit(&details, &entries);
            Ok((
                grid_scopes(&locate(&details.grid_id)?),
                RecordSummary {
                    kind: DocKind::Visit,
                    grid_id: Some(details.grid_id.clone()),
                    subject: Some(details.address_code.clone()),
                    title: details.template.title.clone(),
                    actor: Some(details.inspector.clone()),
                    started_at_ms: visit.checked_in_at_ms,
                    done_at_ms: visit.checked_out_at_ms,
                    updated_at_ms: entries.iter().map(|e| e.at_ms).max().unwrap_or(0),
                    photos: entries
                        .iter()
                        .flat_map(|e| match &e.body {
                            VisitStep::Answered {
                                answer: Answer::Photos(p),
                                ..
                            }
                            | VisitStep::Finding { photos: p, .. } => p.clone(),
                            _ => Vec::new(),
                        })
                        .collect(),
                },
                entry_heads(&entries, today),
            ))
        }
        DocKind::Mediation => {
            let details = doc.details::<MediationRecord>().map_err(bad)?;
            if doc.id() != crate::mediation::mediation_doc_id(&details.file_id) {
                return Err(malformed(id, "the id does not match the file id"));
            }
            let entries = doc.entries::<MediationRecord>().map_err(bad)?;
            let file = crate::mediation::fold_mediation(&details, &entries);
            let ended = file.state.outcome.is_some();
            Ok((
                mediation_scopes(&details, &locate(&details.grid_id)?),
                RecordSummary {
                    kind: DocKind::Mediation,
                    grid_id: Some(details.grid_id.clone()),
                    subject: details.case_id.clone(),
                    title: details.summary.chars().take(60).collect(),
                    actor: Some(details.team.mediator.clone()),
                    started_at_ms: entries.first().map(|e| e.at_ms),
                    done_at_ms: ended.then_some(file.updated_at_ms),
                    updated_at_ms: file.updated_at_ms,
                    photos: entries
                        .iter()
                        .flat_map(|e| match &e.body {
                            MediationStep::Agreed { signatures, .. } => signatures.clone(),
                            _ => Vec::new(),
                        })
                        .collect(),
                },
                entry_heads(&entries, today),
            ))
        }
        DocKind::Template => {
            let details = doc.details::<TemplateRecord>().map_err(bad)?;
            if doc.id() != crate::checklist::template_doc_id(&details.template_id) {
                return Err(malformed(id, "the id does not match the template id"));
            }
            let entries = doc.entries::<TemplateRecord>().map_err(bad)?;
            Ok((
                BTreeSet::from([ScopeKey::District, ScopeKey::Shared]),
                RecordSummary {
                    kind: DocKind::Template,
                    grid_id: None,
                    subject: Some(details.template_id.clone()),
                    title: crate::checklist::current_template(&details, &entries)
                        .map_or_else(|| details.template_id.clone(), |t| t.title),
                    actor: None,
                    started_at_ms: None,
                    done_at_ms: None,
                    updated_at_ms: entries.iter().map(|e| e.at_ms).max().unwrap_or(0),
                    photos: Vec::new(),
                },
                entry_heads(&entries, today),
            ))
        }
    }
}

/// Who wrote an entry, and its checks on its own, without its kind's type.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryHead {
    /// Entry id.
    pub id: String,
    /// User.
    pub actor: String,
    /// Device.
    pub device: String,
    /// Role.
    pub role: Role,
    /// Why the entry cannot stand on its own, if so (role or content).
    pub invalid: Option<String>,
}

fn entry_heads<B: EntryRule>(entries: &[Entry<B>], today: u32) -> Vec<EntryHead> {
    entries
        .iter()
        .map(|e| EntryHead {
            id: e.id.clone(),
            actor: e.actor.clone(),
            device: e.device.clone(),
            role: e.role,
            invalid: e.body.invalid(e, today),
        })
        .collect()
}

/// A kind's check of one entry on its own.
trait EntryRule: Sized {
    /// Why the entry cannot stand, judged on `today` (YYYYMMDD, the server's date).
    fn invalid(&self, entry: &Entry<Self>, today: u32) -> Option<String>;
}

impl EntryRule for crate::address::AddressChange {
    fn invalid(&self, entry: &Entry<Self>, today: u32) -> Option<String> {
        if !may_edit_base(entry.role) {
            return Some(format!(
                "{}不能修改基础数据 / the {} role cannot change base data",
                entry.role.label_zh(),
                entry.role.code()
            ));
        }
        self.validate(today).err().map(|e| e.to_string())
    }
}

impl EntryRule for crate::checklist::VisitStep {
    fn invalid(&self, entry: &Entry<Self>, _today: u32) -> Option<String> {
        // Content is checked against the visit's template in `check_record_push`, which
        // has the details; here only the role.
        (!may_patrol(entry.role)).then(|| {
            format!(
                "{}不能记录巡查 / the {} role cannot record patrols",
                entry.role.label_zh(),
                entry.role.code()
            )
        })
    }
}

impl EntryRule for crate::mediation::MediationStep {
    fn invalid(&self, entry: &Entry<Self>, _today: u32) -> Option<String> {
        if let MediationStep::Agreed { signatures, .. } = self
            && let Some(bad) = signatures.iter().find(|s| !is_sha256_hex(s))
        {
            return Some(format!(
                "签名图片编号无效 / a signature is not a photo hash: {bad:?}"
            ));
        }
        (!may_mediate(entry.role)).then(|| {
            format!(
                "{}不能记录调解 / the {} role cannot record mediation steps",
                entry.role.label_zh(),
                entry.role.code()
            )
        })
    }
}

impl EntryRule for crate::checklist::TemplateChange {
    fn invalid(&self, entry: &Entry<Self>, _today: u32) -> Option<String> {
        if !may_publish_templates(entry.role) {
            return Some(format!(
                "{}不能发布巡查清单 / the {} role cannot publish checklists",
                entry.role.label_zh(),
                entry.role.code()
            ));
        }
        let crate::checklist::TemplateChange::Published { template } = self;
        template.validate().err().map(|e| e.to_string())
    }
}

/// What the record checks need to know about the district beyond the record itself.
pub trait Lookup {
    /// Where a grid sits.
    fn place(&self, grid_id: &str) -> Option<GridPlace>;
    /// The grid of a standard address the server holds.
    fn address_grid(&self, code: &str) -> Option<String>;
    /// Whether this exact template version was published.
    fn is_published(&self, template: &crate::checklist::Template) -> bool;
}

/// Checks a record push: `before` is the server's copy with its scope keys (none for a new
/// record), `after` the record with the push merged, `now_ms` the server's clock.
pub fn check_record_push(
    pusher: &Pusher,
    before: Option<(&RecordDoc, &BTreeSet<ScopeKey>)>,
    after: &RecordDoc,
    lookup: &dyn Lookup,
    now_ms: i64,
) -> Result<Accepted, Refusal> {
    let id = after.id();
    let today = yyyymmdd(now_ms);
    let place = |grid: &str| lookup.place(grid);
    let platform = pusher.role == Role::System && pusher.device_id == PLATFORM_DEVICE;
    if pusher.role == Role::Citizen || (pusher.role == Role::System && !platform) {
        return Err(refuse(
            RejectCode::RoleNotAllowed,
            format!(
                "{}不能提交此类文档 / the {} role cannot push {} documents",
                pusher.role.label_zh(),
                pusher.role.code(),
                after.kind().code()
            ),
        ));
    }
    let (after_scopes, summary, heads) = inspect(after, &place, today)?;
    // One id, one entry: a second entry under a recorded id would slip past the checks of
    // new entries and could displace the recorded one in the fold.
    // (Read from the list as stored: the typed fold drops a duplicate.)
    let raw = after.entries_json().map_err(|e| malformed(id, e))?;
    let mut ids = std::collections::HashSet::new();
    if let Some(twice) = raw
        .iter()
        .map(|e| {
            e.get("id")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
        })
        .find(|entry| !ids.insert(*entry))
    {
        return Err(Refusal {
            code: RejectCode::Malformed,
            message: format!("条目编号 {twice} 重复 / entry id {twice} appears twice"),
            event_ids: vec![twice.to_owned()],
        });
    }
    let scopes = match before {
        Some((_, scopes)) => scopes.clone(),
        None => creation_scopes(after, &after_scopes, &place)?,
    };
    if !pusher.may_write(&scopes) {
        return Err(refuse(
            RejectCode::OutOfScope,
            format!("{id} 不在您的范围内 / {id} is outside your scope"),
        ));
    }
    let mut known: HashMap<String, serde_json::Value> = HashMap::new();
    if let Some((before, _)) = before {
        let bad = |e: crate::Error| malformed(id, e);
        if before.details_json().map_err(bad)? != after.details_json().map_err(bad)? {
            return Err(refuse(
                RejectCode::RewritesHistory,
                format!("不能修改 {id} 的登记信息 / the registered details of {id} cannot change"),
            ));
        }
        for entry in before.entries_json().map_err(bad)? {
            let key = entry.get("id").and_then(|v| v.as_str()).unwrap_or_default();
            known.insert(key.to_owned(), entry);
        }
        let mut changed = Vec::new();
        for (key, entry) in &known {
            let same = raw
                .iter()
                .any(|e| e.get("id").and_then(|v| v.as_str()) == Some(key) && e == entry);
            if !same {
                changed.push(key.clone());
            }
        }
        if !changed.is_empty() {
            return Err(Refusal {
                code: RejectCode::RewritesHistory,
                message:
                    "不能修改或删除已记录的条目 / recorded entries cannot be changed or deleted"
                        .into(),
                event_ids: changed,
            });
        }
    } else {
        check_creation(pusher, after, lookup, today)?;
    }
    let mut added = 0;
    for head in heads.iter().filter(|h| !known.contains_key(&h.id)) {
        let one = |code, message: String| Refusal {
            code,
            message,
            event_ids: vec![head.id.clone()],
        };
        if head.actor != pusher.user_id
            || head.device != pusher.device_id
            || head.role != pusher.role
        {
            return Err(one(
                RejectCode::Impersonation,
                format!(
                    "条目 {} 冒用了他人的身份 / entry {} claims another user, device or role",
                    head.id, head.id
                ),
            ));
        }
        if let Some(reason) = &head.invalid {
            return Err(one(RejectCode::Malformed, reason.clone()));
        }
        added += 1;
    }
    if after.kind() == DocKind::Visit {
        check_visit_entries(after, &known)?;
    }
    Ok(Accepted {
        scopes: after_scopes,
        added,
        summary,
    })
}

/// The keys that allow opening a record: its own, except that a mediation file is opened
/// by holding a key of its place (grid, village, town, district) or a mediation key of it —
/// never by the `member:` key every user holds for themself.
fn creation_scopes(
    doc: &RecordDoc,
    scopes: &BTreeSet<ScopeKey>,
    place: &dyn Fn(&str) -> Option<GridPlace>,
) -> Result<BTreeSet<ScopeKey>, Refusal> {
    if doc.kind() != DocKind::Mediation {
        return Ok(scopes.clone());
    }
    let details = doc
        .details::<MediationRecord>()
        .map_err(|e| malformed(doc.id(), e))?;
    let mut keys: BTreeSet<ScopeKey> = scopes
        .iter()
        .filter(|k| !matches!(k, ScopeKey::Member(_)))
        .cloned()
        .collect();
    if let Some(place) = place(&details.grid_id) {
        keys.extend(grid_scopes(&place));
    }
    Ok(keys)
}

/// Who may open a record of each kind.
fn check_creation(
    pusher: &Pusher,
    doc: &RecordDoc,
    lookup: &dyn Lookup,
    today: u32,
) -> Result<(), Refusal> {
    let id = doc.id();
    let bad = |e: crate::Error| malformed(id, e);
    let not_allowed = |what: &str| {
        Err(refuse(
            RejectCode::RoleNotAllowed,
            format!(
                "{}不能{what} / the {} role cannot open this {}",
                pusher.role.label_zh(),
                pusher.role.code(),
                doc.kind().code()
            ),
        ))
    };
    match doc.kind() {
        DocKind::Case => Err(malformed(id, "not a record")),
        DocKind::Address => {
            if may_edit_base(pusher.role) {
                Ok(())
            } else {
                not_allowed("登记地址")
            }
        }
        DocKind::Visit => {
            let details = doc.details::<VisitRecord>().map_err(bad)?;
            if details.inspector != pusher.user_id || !may_patrol(pusher.role) {
                return Err(refuse(
                    RejectCode::Impersonation,
                    "巡查记录必须由巡查员本人创建 / a visit is opened by its own inspector".into(),
                ));
            }
            if lookup.address_grid(&details.address_code).as_deref() != Some(&details.grid_id) {
                return Err(malformed(
                    id,
                    format!(
                        "网格 {} 没有标准地址 {} / grid {} has no standard address {}",
                        details.grid_id,
                        details.address_code,
                        details.grid_id,
                        details.address_code
                    ),
                ));
            }
            if !lookup.is_published(&details.template) {
                return Err(malformed(
                    id,
                    format!(
                        "巡查清单 {} 第 {} 版未发布 / version {} of checklist {} was not published",
                        details.template.id,
                        details.template.version,
                        details.template.version,
                        details.template.id
                    ),
                ));
            }
            Ok(())
        }
        DocKind::Mediation => {
            let details = doc.details::<MediationRecord>().map_err(bad)?;
            let member = details.team.members().any(|m| m == pusher.user_id);
            if !(member || pusher.role == Role::Mediator) || !may_mediate(pusher.role) {
                return not_allowed("建立调解卷宗");
            }
            details.validate(today).map_err(|e| malformed(id, e))
        }
        DocKind::Template => {
            if may_publish_templates(pusher.role) {
                Ok(())
            } else {
                not_allowed("发布巡查清单")
            }
        }
    }
}

/// A visit's new entries against the template version the visit copied.
fn check_visit_entries(
    doc: &RecordDoc,
    known: &HashMap<String, serde_json::Value>,
) -> Result<(), Refusal> {
    let id = doc.id();
    let bad = |e: crate::Error| malformed(id, e);
    let details = doc.details::<VisitRecord>().map_err(bad)?;
    for entry in doc.entries::<VisitRecord>().map_err(bad)? {
        if known.contains_key(&entry.id) {
            continue;
        }
        if let Err(e) = entry.body.validate(&details.template) {
            return Err(Refusal {
                code: RejectCode::Malformed,
                message: e.to_string(),
                event_ids: vec![entry.id.clone()],
            });
        }
    }
    Ok(())
}

/// The record's summary on the phone or server, for a record that is known to be valid.
pub fn summary(
    doc: &RecordDoc,
    place: &dyn Fn(&str) -> Option<GridPlace>,
) -> Result<(BTreeSet<ScopeKey>, RecordSummary), Refusal> {
    inspect(doc, place, u32::MAX).map(|(s, r, _)| (s, r))
}
