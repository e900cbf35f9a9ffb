//! The push validator: what every operation of every pushed change *does*, judged before the
//! server acknowledges it.
//!
//! Judging a push by the document it leaves behind is not enough. A change that replaces the
//! `history` list with a copy holding every recorded event plus a new one leaves a final state
//! that looks right, yet every event a phone inserted concurrently into the old list vanishes
//! when the two meet. A change can write a megabyte and delete it again, or add a field the
//! typed reading ignores, and every phone in scope downloads it forever. So the rule is stated
//! on operations, and the final state is only a second check:
//!
//! 1. **Only appends.** After a document exists, an operation may only insert a new map into
//!    the root `history` list after an entry (at its head only when the list is empty), or fill
//!    in an object that the same push created. Nothing that existed before the push — the root, `details`, a recorded
//!    event or entry — is written to, and nothing is deleted.
//! 2. **Nothing hidden.** No operation overwrites or deletes anything (its predecessor list is
//!    empty) and no key is written twice, so the final state shows every value the push wrote.
//! 3. **Plain values.** Maps, lists and scalar strings, integers, floats, booleans and nulls:
//!    no Text objects, tables, counters, increments, marks, timestamps or bytes (ADR 0002),
//!    and no string or key holding a character no text may hold ([`crate::text`]).
//! 4. **Typed content.** Each new entry (and, for a new document, its details) reads as the
//!    kind's type and holds nothing that type does not define: its JSON is contained in the
//!    JSON of its typed reading.
//! 5. **Bounded.** Caps on the bytes of a change, the length of a string, the entries a change
//!    and a push may add, and the size of a whole document ([`Caps`]).
//!
//! A new document is the same, plus one first change that writes each root key
//! (`schema`, `kind`, `details`, `history`) once. The rule holds for cases and record documents
//! (addresses, visits, mediation files) alike: they share the shape (ADR 0001, ADR 0007).

use super::access::Refusal;
use super::wire::RejectCode;
use crate::doc::{DocKind, Entry, Record};
use automerge::legacy::{ElementId, Key, ObjectId, OpId, OpType};
use automerge::{AutoCommit, ObjType, ReadDoc, ScalarValue, Value};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value as J;
use std::collections::HashSet;

/// The limits a push is held to. The defaults are far above what the app writes (one change
/// per user action, texts of at most 4,000 characters) and far below what would hurt the
/// server or the phones that download the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Bytes of one change.
    pub change_bytes: usize,
    /// Bytes of one string value.
    pub string_bytes: usize,
    /// Bytes of a change's message.
    pub message_bytes: usize,
    /// Entries (events) one change may add.
    pub entries_per_change: usize,
    /// Entries one push may add to one document.
    pub entries_per_push: usize,
    /// Entries a document may hold.
    pub doc_entries: usize,
    /// Bytes a document's stored changes may reach.
    pub doc_bytes: usize,
}

impl Caps {
    /// The limits the server enforces.
    pub const DEFAULT: Caps = Caps {
        change_bytes: 256 << 10,
        // 4,000 characters of up to four bytes each, with room to spare.
        string_bytes: 16 << 10,
        message_bytes: 256,
        // One user action is one change; a correction at the door may carry a household.
        entries_per_change: 64,
        entries_per_push: 500,
        doc_entries: 5_000,
        doc_bytes: 8 << 20,
    };
}

impl Default for Caps {
    fn default() -> Self {
        Caps::DEFAULT
    }
}

/// What a judged push adds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Judged {
    /// The new entries (events), in the order they were inserted.
    pub entries: usize,
    /// Bytes of the new changes.
    pub bytes: usize,
}

/// Judges the changes a push adds to `doc` (already applied to it): `changes` are those
/// changes, `is_new` says whether the server held no version of the document before, and
/// `stored_bytes` is the size of what the server held. See the module docs for the rules.
pub fn judge(
    doc: &AutoCommit,
    kind: DocKind,
    changes: &[automerge::Change],
    is_new: bool,
    stored_bytes: usize,
    caps: &Caps,
) -> Result<Judged, Refusal> {
    let (history_obj, history) = match doc.get(automerge::ROOT, "history") {
        Ok(Some((Value::Object(ObjType::List), obj))) => match &obj {
            automerge::ObjId::Id(counter, actor, _) => {
                let id = OpId(*counter, actor.clone());
                (obj, id)
            }
            automerge::ObjId::Root => {
                return Err(malformed(
                    "`history` 不是列表 / `history` is not a list".into(),
                ));
            }
        },
        _ => {
            return Err(malformed(
                "`history` 不是列表 / `history` is not a list".into(),
            ));
        }
    };
    let mut created: HashSet<OpId> = HashSet::new();
    let mut written: HashSet<(OpId, String)> = HashSet::new();
    let mut root_keys: HashSet<String> = HashSet::new();
    let mut new_entries: Vec<OpId> = Vec::new();
    let mut head_inserts = 0;
    let mut bytes = 0;
    for change in changes {
        let size = change.raw_bytes().len();
        bytes += size;
        if size > caps.change_bytes {
            return Err(too_large(format!(
                "一次变更 {size} 字节，超过 {} 字节 / one change is {size} bytes, over the limit of {}",
                caps.change_bytes, caps.change_bytes
            )));
        }
        if change
            .message()
            .is_some_and(|m| m.len() > caps.message_bytes)
        {
            return Err(malformed(
                "变更说明过长 / a change's message is too long".into(),
            ));
        }
        if !change.extra_bytes().is_empty() {
            return Err(malformed(
                "变更含有多余的数据 / a change carries extra bytes".into(),
            ));
        }
        let expanded = change.decode();
        let mut entries_here = 0;
        for (index, op) in expanded.operations.iter().enumerate() {
            let id = OpId(
                expanded.start_op.get() + index as u64,
                expanded.actor_id.clone(),
            );
            check_value(&op.action, caps)?;
            if let Key::Map(name) = &op.key
                && crate::text::first_unfit(name).is_some()
            {
                return Err(unfit(name));
            }
            match (&op.obj, &op.key) {
                (ObjectId::Root, Key::Map(name)) => {
                    if !is_new {
                        return Err(rewrites(format!(
                            "不能改写文档根部的 `{name}` / a push may not rewrite `{name}` at the root"
                        )));
                    }
                    let expected = match name.as_str() {
                        "schema" => matches!(op.action, OpType::Put(ScalarValue::Int(_))),
                        "kind" => matches!(op.action, OpType::Put(ScalarValue::Str(_))),
                        "details" => matches!(op.action, OpType::Make(ObjType::Map)),
                        "history" => matches!(op.action, OpType::Make(ObjType::List)),
                        _ => false,
                    };
                    if !expected || !root_keys.insert(name.to_string()) {
                        return Err(malformed(format!(
                            "文档根部的 `{name}` 无效 / `{name}` at the root is not allowed"
                        )));
                    }
                }
                (ObjectId::Root, Key::Seq(_)) => {
                    return Err(malformed(
                        "文档根部不是列表 / the root is not a list".into(),
                    ));
                }
                (ObjectId::Id(obj), key) if *obj == history => {
                    let Key::Seq(after) = key else {
                        return Err(malformed("`history` 是列表 / `history` is a list".into()));
                    };
                    if !op.insert || !matches!(op.action, OpType::Make(ObjType::Map)) {
                        return Err(malformed(
                            "`history` 只能追加新的条目 / `history` only takes new entries".into(),
                        ));
                    }
                    if *after == ElementId::Head {
                        head_inserts += 1;
                    }
                    entries_here += 1;
                    new_entries.push(id.clone());
                }
                (ObjectId::Id(obj), key) => {
                    if !created.contains(obj) {
                        return Err(rewrites(
                            "不能修改已记录的内容 / recorded content cannot be changed".into(),
                        ));
                    }
                    match key {
                        Key::Map(name) => {
                            if op.insert || !written.insert((obj.clone(), name.to_string())) {
                                return Err(rewrites(format!(
                                    "字段 `{name}` 写了两次 / the field `{name}` is written twice"
                                )));
                            }
                        }
                        Key::Seq(_) if !op.insert => {
                            return Err(rewrites(
                                "不能覆盖列表中的元素 / a list element cannot be overwritten"
                                    .into(),
                            ));
                        }
                        Key::Seq(_) => {}
                    }
                }
            }
            if !op.pred.is_empty() {
                return Err(rewrites(
                    "不能覆盖已写入的内容 / a push may not overwrite anything".into(),
                ));
            }
            if matches!(op.action, OpType::Make(_)) {
                created.insert(id);
            }
        }
        if entries_here > caps.entries_per_change {
            return Err(too_large(format!(
                "一次变更添加了 {entries_here} 条记录，上限 {} / one change adds {entries_here} entries, over the limit of {}",
                caps.entries_per_change, caps.entries_per_change
            )));
        }
    }
    if is_new {
        for key in ["schema", "kind", "details", "history"] {
            if !root_keys.contains(key) {
                return Err(malformed(format!(
                    "新文档缺少 `{key}` / a new document lacks `{key}`"
                )));
            }
        }
    }
    if new_entries.len() > caps.entries_per_push {
        return Err(too_large(format!(
            "一次推送添加了 {} 条记录，上限 {} / one push adds {} entries, over the limit of {}",
            new_entries.len(),
            caps.entries_per_push,
            new_entries.len(),
            caps.entries_per_push
        )));
    }
    // Only the first entry of an empty history starts the list; every later one follows an
    // entry. (Nothing is deleted, so the entries before the push are those not new now.)
    let before = doc.length(&history_obj).saturating_sub(new_entries.len());
    if head_inserts > 1 || (head_inserts == 1 && before > 0) {
        return Err(rewrites(
            "新条目只能追加在已有条目之后 / new entries go after the recorded ones".into(),
        ));
    }
    check_content(doc, kind, &history_obj, &new_entries, is_new, caps)?;
    if stored_bytes + bytes > caps.doc_bytes {
        return Err(too_large(format!(
            "文档将超过 {} 字节 / the document would exceed {} bytes",
            caps.doc_bytes, caps.doc_bytes
        )));
    }
    Ok(Judged {
        entries: new_entries.len(),
        bytes,
    })
}

/// Rule 3 and the string cap, for one operation.
fn check_value(action: &OpType, caps: &Caps) -> Result<(), Refusal> {
    match action {
        OpType::Make(ObjType::Map | ObjType::List) => Ok(()),
        OpType::Delete => Err(rewrites(
            "不能删除已写入的内容 / a push may not delete anything".into(),
        )),
        OpType::Make(ObjType::Text) => Err(malformed(
            "文档只用普通字符串，不用 Text 对象 / documents hold plain strings, not Text objects"
                .into(),
        )),
        OpType::Put(ScalarValue::Str(s)) if s.len() > caps.string_bytes => Err(too_large(format!(
            "一个字符串 {} 字节，超过 {} 字节 / a string of {} bytes is over the limit of {}",
            s.len(),
            caps.string_bytes,
            s.len(),
            caps.string_bytes
        ))),
        OpType::Put(ScalarValue::Str(s)) if crate::text::first_unfit(s).is_some() => Err(unfit(s)),
        OpType::Put(
            ScalarValue::Str(_)
            | ScalarValue::Int(_)
            | ScalarValue::Uint(_)
            | ScalarValue::F64(_)
            | ScalarValue::Boolean(_)
            | ScalarValue::Null,
        ) => Ok(()),
        other => Err(malformed(format!(
            "文档不使用这种操作 / documents do not use this operation: {}",
            op_name(other)
        ))),
    }
}

fn op_name(action: &OpType) -> &'static str {
    match action {
        OpType::Make(ObjType::Map) => "map",
        OpType::Make(ObjType::List) => "list",
        OpType::Make(ObjType::Text) => "text",
        OpType::Make(ObjType::Table) => "table",
        OpType::Delete => "delete",
        OpType::Increment(_) => "increment",
        OpType::Put(ScalarValue::Counter(_)) => "counter",
        OpType::Put(ScalarValue::Timestamp(_)) => "timestamp",
        OpType::Put(ScalarValue::Bytes(_)) => "bytes",
        OpType::Put(_) => "scalar",
        OpType::MarkBegin(_) | OpType::MarkEnd(_) => "mark",
    }
}

/// Rule 4 and the document caps: each new entry, and a new document's details, hold only what
/// their type defines.
fn check_content(
    doc: &AutoCommit,
    kind: DocKind,
    history_obj: &automerge::ObjId,
    new_entries: &[OpId],
    is_new: bool,
    caps: &Caps,
) -> Result<(), Refusal> {
    let shape = Shape::of(kind);
    let mut remaining: HashSet<&OpId> = new_entries.iter().collect();
    let mut length = 0;
    for item in doc.list_range(history_obj, ..) {
        length += 1;
        if remaining.is_empty() {
            continue;
        }
        let automerge::ObjId::Id(counter, actor, _) = item.id() else {
            continue;
        };
        if !remaining.remove(&OpId(counter, actor)) {
            continue;
        }
        let raw = crate::doc::read_json(doc, &item.id(), ObjType::Map);
        let canonical = (shape.entry)(&raw)
            .map_err(|e| malformed(format!("新条目无法读取 / a new entry does not read: {e}")))?;
        if let Some(path) = surplus(&raw, &canonical) {
            return Err(malformed(format!(
                "新条目含有未定义的字段 / a new entry holds an undefined field: {path}"
            )));
        }
    }
    if !remaining.is_empty() {
        return Err(malformed(
            "新条目不在 `history` 中 / a new entry is not in `history`".into(),
        ));
    }
    if length > caps.doc_entries {
        return Err(too_large(format!(
            "文档将有 {length} 条记录，上限 {} / the document would hold {length} entries, over the limit of {}",
            caps.doc_entries, caps.doc_entries
        )));
    }
    if is_new {
        let details = match doc.get(automerge::ROOT, "details") {
            Ok(Some((Value::Object(ObjType::Map), id))) => id,
            _ => {
                return Err(malformed(
                    "`details` 不是对象 / `details` is not a map".into(),
                ));
            }
        };
        let raw = crate::doc::read_json(doc, &details, ObjType::Map);
        let canonical = (shape.details)(&raw)
            .map_err(|e| malformed(format!("`details` 无法读取 / `details` does not read: {e}")))?;
        if let Some(path) = surplus(&raw, &canonical) {
            return Err(malformed(format!(
                "`details` 含有未定义的字段 / `details` holds an undefined field: {path}"
            )));
        }
    }
    Ok(())
}

/// How one kind's details and entries are read.
struct Shape {
    details: fn(&J) -> Result<J, String>,
    entry: fn(&J) -> Result<J, String>,
}

impl Shape {
    fn of(kind: DocKind) -> Shape {
        use crate::address::AddressRecord;
        use crate::checklist::{TemplateRecord, VisitRecord};
        use crate::mediation::MediationRecord;
        match kind {
            DocKind::Case => Shape {
                details: typed::<crate::case::CaseDetails>,
                entry: typed::<crate::case::Event>,
            },
            DocKind::Address => record::<AddressRecord>(),
            DocKind::Visit => record::<VisitRecord>(),
            DocKind::Mediation => record::<MediationRecord>(),
            DocKind::Template => record::<TemplateRecord>(),
        }
    }
}

fn record<R: Record>() -> Shape {
    Shape {
        details: typed::<R::Details>,
        entry: typed::<Entry<R::Body>>,
    }
}

/// The JSON of `raw` read as `T` and written back.
fn typed<T: Serialize + DeserializeOwned>(raw: &J) -> Result<J, String> {
    let value: T = serde_json::from_value(raw.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(value).map_err(|e| e.to_string())
}

/// The first place where `raw` holds something `canonical` does not (an undefined field, or a
/// value the typed reading changed), as a path; `None` when `raw` is contained in it. Keys
/// missing from `raw` are fine (serde defaults), and numbers compare by value (a second
/// implementation may write `31` for `31.0`).
pub fn surplus(raw: &J, canonical: &J) -> Option<String> {
    match (raw, canonical) {
        (J::Object(raw), J::Object(canonical)) => {
            raw.iter()
                .find_map(|(key, value)| match canonical.get(key) {
                    Some(c) => surplus(value, c).map(|path| {
                        if path.is_empty() {
                            key.clone()
                        } else {
                            format!("{key}.{path}")
                        }
                    }),
                    None if value.is_null() => None,
                    None => Some(key.clone()),
                })
        }
        (J::Array(raw), J::Array(canonical)) => {
            if raw.len() != canonical.len() {
                return Some(String::new());
            }
            raw.iter()
                .zip(canonical)
                .enumerate()
                .find_map(|(i, (r, c))| surplus(r, c).map(|path| format!("[{i}]{path}")))
        }
        (J::Number(r), J::Number(c)) => (r.as_f64() != c.as_f64()).then(String::new),
        (r, c) => (r != c).then(String::new),
    }
}

/// Rule 3 for text: a character no text may hold (see [`crate::text`]).
fn unfit(s: &str) -> Refusal {
    let error = crate::text::check(s).err();
    malformed(error.map_or_else(String::new, |e| e.to_string()))
}

fn malformed(message: String) -> Refusal {
    Refusal {
        code: RejectCode::Malformed,
        message,
        event_ids: Vec::new(),
    }
}

fn rewrites(message: String) -> Refusal {
    Refusal {
        code: RejectCode::RewritesHistory,
        message,
        event_ids: Vec::new(),
    }
}

fn too_large(message: String) -> Refusal {
    Refusal {
        code: RejectCode::TooLarge,
        message,
        event_ids: Vec::new(),
    }
}
