//! The push validator, fed changes made from a real case document.
//!
//! A case is reported by an inspector and accepted by the chief (the base). The input picks a
//! pusher and a mode: its bytes are either taken as change bytes, taken as a whole new
//! document, or read as a program of Automerge operations on the pusher's copy of the base
//! (the app's own `record`, appends of real and junk events, writes into the root, the details
//! and recorded events, deletions, replaced lists, Text objects, counters, long strings, and
//! commits between them). The changes then go through what the server runs for a case push:
//! apply, the operation judge, the typed reading and the access rules.
//!
//! The oracle: when a push is accepted, every recorded event is still there, and a comment the
//! inspector recorded concurrently on the base survives the merge with it.

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjId, ObjType, ReadDoc, ScalarValue};
use gridlink_core::case::{
    Case, CaseDetails, Category, Event, EventKind, Location, Role, Source, Stamp,
};
use gridlink_core::doc::{CaseDoc, DocKind};
use gridlink_core::geo::LatLon;
use gridlink_core::sync::access::{Before, Pusher, check_push};
use gridlink_core::sync::ops::{Caps, judge};
use gridlink_core::sync::scope::{GridPlace, ScopeKey, case_scopes};
use std::collections::BTreeSet;
use std::sync::OnceLock;

const CASE_ID: &str = "3f2b9c1e-7a44-4d0b-9e61-2c5a8d7f0b13";
const GRID: &str = "320509001001-01";
const T0: i64 = 1_795_910_400_000;

fn place() -> GridPlace {
    GridPlace {
        grid_id: GRID.into(),
        village_id: "320509001001".into(),
        town_id: "320509001".into(),
    }
}

fn actor(n: u8) -> ActorId {
    ActorId::from(vec![n; 16])
}

fn stamp(user: &str, role: Role, device: &str, at_ms: i64) -> Stamp {
    Stamp {
        actor: user.into(),
        role,
        device: device.into(),
        at_ms,
        location: None,
    }
}

/// The base case, as the server holds it, and a concurrent comment's changes.
struct Base {
    saved: Vec<u8>,
    case: Case,
    scopes: BTreeSet<ScopeKey>,
    comment: Vec<u8>,
    comment_id: String,
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let details = CaseDetails {
            id: CASE_ID.into(),
            category: Category::FireHazard,
            source: Source::GridInspector,
            title: "楼道堆物".into(),
            description: "三楼楼道堆满纸箱，堵住了安全出口。".into(),
            location: Some(Location {
                point: LatLon::new(31.16, 120.64),
                accuracy_m: 8.0,
            }),
            address_id: None,
            grid_id: GRID.into(),
            reporter: None,
            priority: Default::default(),
        };
        let reported = stamp("insp-0001", Role::GridInspector, "dev-insp", T0);
        let (mut doc, _) = CaseDoc::create(details, Vec::new(), reported, actor(1))
            .unwrap_or_else(|e| panic!("base case: {e}"));
        doc.set_actor(actor(2));
        doc.record(
            EventKind::Accepted {
                assignee: Some("insp-0001".into()),
                due_at_ms: None,
            },
            stamp("chief-0001", Role::GridChief, "dev-chief", T0 + 60_000),
        )
        .unwrap_or_else(|e| panic!("base accept: {e}"));
        let saved = doc.save();
        let heads = doc.heads();
        let case = doc.case().unwrap_or_else(|e| panic!("base case: {e}"));
        let scopes = case_scopes(&case, &place());
        let mut concurrent =
            CaseDoc::load(CASE_ID, &saved).unwrap_or_else(|e| panic!("base load: {e}"));
        concurrent.set_actor(actor(3));
        let (event, _) = concurrent
            .record(
                EventKind::Comment {
                    text: "已联系物业清理".into(),
                },
                stamp("insp-0001", Role::GridInspector, "dev-insp", T0 + 120_000),
            )
            .unwrap_or_else(|e| panic!("base comment: {e}"));
        let comment = concurrent.save_after(&heads);
        Base {
            saved,
            case,
            scopes,
            comment,
            comment_id: event.id,
        }
    })
}

/// Who pushes, from one byte: the app's roles on this case, and one device naming another.
fn pusher(byte: u8) -> (Pusher, Stamp) {
    let (user, role, device, extra) = match byte % 6 {
        0 => ("insp-0001", Role::GridInspector, "dev-insp", None),
        1 => ("chief-0001", Role::GridChief, "dev-chief", None),
        2 => ("op-01", Role::Operator, "dev-op", None),
        3 => (
            "dept-env-01",
            Role::DepartmentHandler,
            "dev-dept",
            Some(ScopeKey::Department("dept-env".into())),
        ),
        4 => ("insp-0002", Role::GridInspector, "dev-other", None),
        _ => ("citizen-1", Role::Citizen, "dev-citizen", None),
    };
    let mut scopes = BTreeSet::from([ScopeKey::Grid(GRID.into())]);
    if role == Role::Operator {
        scopes.insert(ScopeKey::District);
    }
    scopes.extend(extra);
    let pusher = Pusher {
        user_id: user.into(),
        role,
        device_id: device.into(),
        scopes,
    };
    (pusher, stamp(user, role, device, T0 + 180_000))
}

/// A byte reader that yields zeros once the input is spent.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn pick<'k>(&mut self, from: &[&'k str]) -> &'k str {
        from[usize::from(self.byte()) % from.len()]
    }

    fn scalar(&mut self) -> ScalarValue {
        match self.byte() % 8 {
            0 => ScalarValue::Str(self.pick(WORDS).into()),
            1 => ScalarValue::Int(i64::from(self.byte()) - 64),
            2 => ScalarValue::Boolean(self.byte().is_multiple_of(2)),
            3 => ScalarValue::Null,
            4 => ScalarValue::F64(f64::from(self.byte()) / 3.0),
            5 => ScalarValue::Str("\u{FFFF}".into()),
            6 => ScalarValue::Timestamp(T0),
            _ => ScalarValue::Bytes(vec![self.byte(); 3]),
        }
    }
}

const ROOT_KEYS: &[&str] = &["schema", "kind", "details", "history", "extra"];
const DETAIL_KEYS: &[&str] = &["title", "description", "grid_id", "category", "id", "x"];
const EVENT_KEYS: &[&str] = &[
    "id", "seq", "kind", "actor", "role", "device", "at_ms", "type", "text", "note", "x",
];
const WORDS: &[&str] = &[
    "comment",
    "handling",
    "resolved",
    "closed",
    "insp-0001",
    "chief-0001",
    "grid_inspector",
    "grid_chief",
    "dev-insp",
    "",
];

fn event_kind(b: u8) -> EventKind {
    match b % 8 {
        0 => EventKind::Comment {
            text: "楼道已清理".into(),
        },
        1 => EventKind::Handling {
            note: "处理中".into(),
        },
        2 => EventKind::Resolved {
            note: "已解决".into(),
        },
        3 => EventKind::Closed {
            note: "结案".into(),
        },
        4 => EventKind::RejectedInvalid {
            reason: "重复上报".into(),
        },
        5 => EventKind::PhotoAdded {
            hash: "ab".repeat(32),
        },
        6 => EventKind::Reported { photos: Vec::new() },
        _ => EventKind::Verified {
            note: "核查通过".into(),
        },
    }
}

fn history(am: &AutoCommit) -> Option<ObjId> {
    match am.get(automerge::ROOT, "history") {
        Ok(Some((_, id))) => Some(id),
        _ => None,
    }
}

/// Events one program may add in bulk: past the cap of a change (64); more only slows each
/// run (the per-push and per-document caps have their own tests).
const RECORD_BUDGET: usize = 160;

/// Operations one program runs: a real push is a few user actions; Automerge writes inside one
/// open transaction slow down with every op, and a fuzzer needs many runs a second.
const MAX_STEPS: usize = 24;

/// Runs the program in `input` on `doc` (the pusher's copy of the base).
fn run(doc: &mut CaseDoc, stamp: &Stamp, input: &mut Bytes<'_>) {
    let mut made: Vec<ObjId> = Vec::new();
    let mut steps = 0;
    let mut recorded = 0;
    while !input.is_empty() && steps < MAX_STEPS {
        steps += 1;
        let op = input.byte();
        let am_ok = match op % 14 {
            // The app's own path.
            0 => doc.record(event_kind(input.byte()), stamp.clone()).is_ok(),
            1 => {
                let (key, value) = (input.pick(ROOT_KEYS), input.scalar());
                doc.automerge().put(automerge::ROOT, key, value).is_ok()
            }
            2 => {
                let (key, value) = (input.pick(DETAIL_KEYS), input.scalar());
                let am = doc.automerge();
                match am.get(automerge::ROOT, "details") {
                    Ok(Some((_, details))) => am.put(&details, key, value).is_ok(),
                    _ => false,
                }
            }
            // A well-formed event inserted anywhere, through autosurgeon.
            3 => {
                let events = doc.history().unwrap_or_default();
                let event = Event::new(event_kind(input.byte()), stamp.clone(), &events);
                let at = usize::from(input.byte()) % (events.len() + 1);
                let am = doc.automerge();
                match history(am) {
                    Some(list) => autosurgeon::reconcile_insert(am, list, at, &event).is_ok(),
                    None => false,
                }
            }
            // A map of junk inserted into the history.
            4 => {
                let am = doc.automerge();
                let Some(list) = history(am) else { continue };
                let at = usize::from(input.byte()) % (am.length(&list) + 1);
                match am.insert_object(&list, at, ObjType::Map) {
                    Ok(map) => {
                        for _ in 0..input.byte() % 4 {
                            let (key, value) = (input.pick(EVENT_KEYS), input.scalar());
                            let _ = am.put(&map, key, value);
                        }
                        made.push(map);
                        true
                    }
                    Err(_) => false,
                }
            }
            5 => {
                let am = doc.automerge();
                let Some(list) = history(am) else { continue };
                let len = am.length(&list);
                len > 0 && am.delete(&list, usize::from(input.byte()) % len).is_ok()
            }
            // The JavaScript append idiom: a new list with copies of the events.
            6 => {
                let events = doc.history().unwrap_or_default();
                if events.len() > 100 {
                    continue;
                }
                let am = doc.automerge();
                match am.put_object(automerge::ROOT, "history", ObjType::List) {
                    Ok(list) => events.iter().enumerate().all(|(i, e)| {
                        autosurgeon::reconcile_insert(am, list.clone(), i, e).is_ok()
                    }),
                    Err(_) => false,
                }
            }
            // A write into a recorded event.
            7 => {
                let am = doc.automerge();
                let Some(list) = history(am) else { continue };
                let len = am.length(&list);
                if len == 0 {
                    continue;
                }
                match am.get(&list, usize::from(input.byte()) % len) {
                    Ok(Some((_, event))) => {
                        let (key, value) = (input.pick(EVENT_KEYS), input.scalar());
                        am.put(&event, key, value).is_ok()
                    }
                    _ => false,
                }
            }
            // A Text object where a string belongs.
            8 => {
                let am = doc.automerge();
                let target = made.last().cloned().or_else(|| {
                    am.get(automerge::ROOT, "details")
                        .ok()
                        .flatten()
                        .map(|(_, d)| d)
                });
                match target {
                    Some(obj) => {
                        match am.put_object(&obj, input.pick(DETAIL_KEYS), ObjType::Text) {
                            Ok(text) => am.splice_text(&text, 0, 0, "已处理").is_ok(),
                            Err(_) => false,
                        }
                    }
                    None => false,
                }
            }
            9 => {
                let am = doc.automerge();
                let key = input.pick(ROOT_KEYS);
                am.put(automerge::ROOT, key, ScalarValue::counter(1))
                    .is_ok()
                    && am.increment(automerge::ROOT, key, 2).is_ok()
            }
            // A long string, written and maybe taken back before the push.
            10 => {
                let am = doc.automerge();
                let Some(obj) = made.last().cloned() else {
                    continue;
                };
                let long = "长".repeat(usize::from(input.byte() % 64) * 1_024);
                let ok = am.put(&obj, "text", long).is_ok();
                if input.byte().is_multiple_of(2) {
                    ok && am.put(&obj, "text", "短").is_ok()
                } else {
                    ok
                }
            }
            // Many events in one change, appended as the app appends (read the history once:
            // a budget keeps one run in milliseconds).
            11 => {
                let n =
                    (usize::from(input.byte()) % 100).min(RECORD_BUDGET.saturating_sub(recorded));
                recorded += n;
                let mut events = doc.history().unwrap_or_default();
                let am = doc.automerge();
                let Some(list) = history(am) else { continue };
                (0..n).all(|_| {
                    let event = Event::new(
                        EventKind::Comment {
                            text: "批量".into(),
                        },
                        stamp.clone(),
                        &events,
                    );
                    let at = events.len();
                    let ok = autosurgeon::reconcile_insert(am, list.clone(), at, &event).is_ok();
                    events.push(event);
                    ok
                })
            }
            12 => {
                let am = doc.automerge();
                am.delete(automerge::ROOT, input.pick(ROOT_KEYS)).is_ok()
            }
            _ => {
                doc.automerge().commit();
                true
            }
        };
        let _ = am_ok;
    }
    doc.automerge().commit();
}

/// See the module docs.
pub fn push(data: &[u8]) {
    let base = base();
    let mut input = Bytes(data);
    let (pusher, stamp) = pusher(input.byte());
    let mode = input.byte();
    let Ok(mut server) = CaseDoc::load(CASE_ID, &base.saved) else {
        panic!("the base does not load");
    };
    let before_heads = server.heads();
    let pushed = match mode % 8 {
        0 => input.0.to_vec(),
        1 => {
            // A whole document for a case the server does not know.
            judge_new(&pusher, input.0);
            return;
        }
        _ => {
            let Ok(mut phone) = CaseDoc::load(CASE_ID, &base.saved) else {
                return;
            };
            phone.set_actor(actor(9));
            run(&mut phone, &stamp, &mut input);
            phone.save_after(&before_heads)
        }
    };
    if server.apply_in_place(&pushed).is_err() {
        return;
    }
    let new = server.changes_since(&before_heads);
    if new.changes.is_empty() {
        return;
    }
    if judge(
        server.automerge(),
        DocKind::Case,
        &new.changes,
        false,
        base.saved.len(),
        &Caps::DEFAULT,
    )
    .is_err()
    {
        return;
    }
    let Ok(after) = server.case() else { return };
    if after.details.id != CASE_ID {
        return;
    }
    let after_scopes: BTreeSet<ScopeKey> = case_scopes(&after, &place())
        .union(&base.scopes)
        .cloned()
        .collect();
    let before = Before {
        case: &base.case,
        scopes: &base.scopes,
    };
    if check_push(&pusher, Some(before), &after, &after_scopes).is_err() {
        return;
    }
    // Accepted: nothing recorded is gone, and a concurrent event survives the merge.
    for event in &base.case.history {
        assert!(
            after.history.iter().any(|e| e.id == event.id),
            "an accepted push removed the recorded event {}",
            event.id
        );
    }
    server
        .apply_in_place(&base.comment)
        .unwrap_or_else(|e| panic!("the concurrent comment no longer applies: {e}"));
    let merged = server
        .case()
        .unwrap_or_else(|e| panic!("the merged case does not read: {e}"));
    assert!(
        merged.history.iter().any(|e| e.id == base.comment_id),
        "an accepted push made a concurrent comment vanish"
    );
    for event in &after.history {
        assert!(
            merged.history.iter().any(|e| e.id == event.id),
            "an accepted event vanished in the merge"
        );
    }
}

/// A new document pushed whole: loaded, judged as new, read and checked.
fn judge_new(pusher: &Pusher, bytes: &[u8]) {
    let Ok(mut doc) = CaseDoc::load(CASE_ID, bytes) else {
        return;
    };
    let new = doc.changes_since(&[]);
    if judge(
        doc.automerge(),
        DocKind::Case,
        &new.changes,
        true,
        0,
        &Caps::DEFAULT,
    )
    .is_err()
    {
        return;
    }
    let Ok(case) = doc.case() else { return };
    let scopes = case_scopes(&case, &place());
    let _ = check_push(pusher, None, &case, &scopes);
}

/// A program input: who pushes (a byte of [`pusher`]) and the operations.
pub fn push_program(pusher: u8, ops: &[u8]) -> Vec<u8> {
    let mut input = vec![pusher, 2];
    input.extend_from_slice(ops);
    input
}

/// Changes a phone really pushes: the inspector's comment on the base.
pub(crate) fn seed_changes() -> Vec<u8> {
    base().comment.clone()
}

pub(crate) fn seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = [
        (0, &[0u8, 0][..]),
        (1, &[0, 1, 13, 0, 2]),
        (1, &[6]),
        (1, &[3, 0, 0]),
        (0, &[4, 1, 3, 0, 0, 1, 5]),
        (0, &[5, 0]),
        (0, &[7, 0, 1, 0, 0]),
        (0, &[8, 0, 1]),
        (0, &[9, 3]),
        (0, &[4, 1, 0, 10, 8, 0]),
        (0, &[11, 90]),
        (2, &[12, 3]),
        (3, &[0, 1]),
        (4, &[0, 0]),
        (5, &[0, 0]),
    ]
    .iter()
    .map(|(p, ops)| push_program(*p, ops))
    .collect();
    let mut raw = vec![0, 0];
    raw.extend_from_slice(&base().comment);
    seeds.push(raw);
    let mut whole = vec![0, 1];
    whole.extend_from_slice(&base().saved);
    seeds.push(whole);
    seeds
}

/// The push pipeline without the validator: whether the concurrent comment survives a push
/// the server would have merged unjudged (`None` when the input makes no mergeable push). It
/// shows the oracle of [`push`] has teeth: the inputs it fails on are the validator's to stop.
pub fn comment_survives_unjudged(data: &[u8]) -> Option<bool> {
    let base = base();
    let mut input = Bytes(data);
    let (_, stamp) = pusher(input.byte());
    let _mode = input.byte();
    let mut server = CaseDoc::load(CASE_ID, &base.saved).ok()?;
    let before_heads = server.heads();
    let mut phone = CaseDoc::load(CASE_ID, &base.saved).ok()?;
    phone.set_actor(actor(9));
    run(&mut phone, &stamp, &mut input);
    server
        .apply_in_place(&phone.save_after(&before_heads))
        .ok()?;
    server.apply_in_place(&base.comment).ok()?;
    let merged = server.case().ok()?;
    Some(merged.history.iter().any(|e| e.id == base.comment_id))
}
