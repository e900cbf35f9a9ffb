//! Record documents on the phone: standard addresses with their people and enterprises
//! (一标多实), checklist templates, patrol visits, mediation files.
//!
//! Each record is written like a case: one Automerge change per user action, the document and
//! its index row (`records`, plus `record_search` terms for addresses) in one transaction.
//! What the phone holds is what sync brought into its scope: the addresses and visits of its
//! grids, the templates, and the mediation files whose team it is on.

use super::{Moment, NewCase, Store, write_bytes};
use crate::address::{
    Address, AddressChange, AddressDetails, AddressRecord, BaseError, address_doc_id, fold_address,
    may_edit_base, yyyymmdd,
};
use crate::case::{Case, Source};
use crate::checklist::{
    Answer, ChecklistError, Template, TemplateRecord, Visit, VisitDetails, VisitRecord, VisitStep,
    check_in, current_template, fold_visit, may_patrol, template_doc_id, visit_doc_id,
};
use crate::doc::{DocKind, Entry, Record, RecordDoc};
use crate::error::{Error, Result};
use crate::geo::{LatLon, haversine_m};
use crate::mediation::{
    MediationDetails, MediationFile, MediationRecord, MediationState, MediationStep,
    fold_mediation, may_mediate, mediation_doc_id,
};
use crate::search;
use automerge::ChangeHash;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// Check-in distance allowed by default, metres.
pub const DEFAULT_CHECK_IN_M: f64 = 200.0;

/// An address found by a search or by distance, as the signed-in role may see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddressHit {
    /// Standard address code.
    pub code: String,
    /// Address text.
    pub text: String,
    /// Grid.
    pub grid_id: String,
    /// Position.
    pub point: LatLon,
    /// Distance from the point asked about, metres (for "near me").
    pub distance_m: Option<f64>,
    /// People living there now, names masked unless the role sees them.
    pub residents: Vec<String>,
    /// Enterprises operating there now.
    pub enterprises: Vec<String>,
}

/// An address of a grid on the patrol list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatrolItem {
    /// Standard address code.
    pub code: String,
    /// Address text.
    pub text: String,
    /// The last completed visit's check-out, UTC ms.
    pub last_visit_ms: Option<i64>,
    /// Not visited within the period asked about.
    pub due: bool,
}

/// What answering an item did.
#[derive(Debug, Clone, PartialEq)]
pub struct VisitAnswer {
    /// The visit now.
    pub visit: Visit,
    /// The case the answer opened (a hazard rule fired).
    pub hazard_case: Option<Case>,
}

/// A mediation file in a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediationSummary {
    /// File id.
    pub file_id: String,
    /// Grid.
    pub grid_id: String,
    /// Summary line.
    pub title: String,
    /// Ended (agreed, refused, withdrawn).
    pub ended: bool,
    /// Latest step, UTC ms.
    pub updated_at_ms: i64,
}

impl Store {
    /// Registers a standard address (grid chiefs; addresses mostly arrive from the server's
    /// register). Registering the same code again with the same details returns it as it is.
    pub fn register_address(&self, details: AddressDetails, at: Moment) -> Result<Address> {
        details.validate()?;
        if !may_edit_base(self.config.role) {
            return Err(BaseError::RoleNotAllowed(self.config.role.label_zh()).into());
        }
        let role = self.config.role;
        self.create_record::<AddressRecord, _>(
            &address_doc_id(&details.code),
            &details,
            Vec::new(),
            at,
            |doc| {
                let existing = doc.details::<AddressRecord>()?;
                if existing == details {
                    Ok(fold_address(&existing, &doc.entries::<AddressRecord>()?).for_role(role))
                } else {
                    Err(BaseError::Field {
                        field: "地址编码 code",
                        problem_zh: "已登记为另一个地址",
                        problem_en: "already registered for another address",
                    }
                    .into())
                }
            },
            |_| fold_address(&details, &[]).for_role(role),
        )
    }

    /// Creates a record with its first entries, or — when its id exists already (a retried
    /// tap) — answers with `existing` (which runs with the connection held: it must not call
    /// back into the store).
    fn create_record<R: Record, T>(
        &self,
        id: &str,
        details: &R::Details,
        first: Vec<R::Body>,
        at: Moment,
        existing: impl FnOnce(RecordDoc) -> Result<T>,
        created: impl FnOnce(Vec<Entry<R::Body>>) -> T,
    ) -> Result<T> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        if let Some(doc) = self.load_record(&tx, id)? {
            return existing(doc);
        }
        let (mut doc, entries) =
            RecordDoc::create::<R>(id, details, first, &self.stamp(at), self.actor())?;
        self.write_record(&tx, &mut doc, None)?;
        tx.commit()?;
        Ok(created(entries))
    }

    /// An address with its houses, people and enterprises, masked for the signed-in role.
    pub fn address(&self, code: &str) -> Result<Address> {
        let doc = self.record_doc(&address_doc_id(code))?;
        let details = doc.details::<AddressRecord>()?;
        Ok(fold_address(&details, &doc.entries::<AddressRecord>()?).for_role(self.config.role))
    }

    /// Adds and corrects base data at the door, offline: each change is checked on its own
    /// (ID check digit, credit code, names, dates) and against the address as it stands
    /// (the person corrected must be there); all land as one change, or none.
    pub fn change_address(
        &self,
        code: &str,
        changes: Vec<AddressChange>,
        at: Moment,
    ) -> Result<Address> {
        if !may_edit_base(self.config.role) {
            return Err(BaseError::RoleNotAllowed(self.config.role.label_zh()).into());
        }
        let today = yyyymmdd(at.at_ms);
        for change in &changes {
            change.validate(today)?;
        }
        if changes.is_empty() {
            return self.address(code);
        }
        let id = address_doc_id(code);
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let mut doc = self.existing_record(&tx, &id)?;
        let before = doc.heads();
        let added = doc.append::<AddressRecord>(changes, &self.stamp(at))?;
        let details = doc.details::<AddressRecord>()?;
        let address = fold_address(&details, &doc.entries::<AddressRecord>()?);
        if let Some(u) = address
            .unapplied
            .iter()
            .find(|u| added.iter().any(|a| a.id == u.entry_id))
        {
            return Err(BaseError::Unknown(u.reason.clone()).into());
        }
        self.write_record(&tx, &mut doc, Some(&before))?;
        tx.commit()?;
        Ok(address.for_role(self.config.role))
    }

    /// Addresses whose text, residents' names or enterprises' names contain `text`
    /// (names are matched in full, shown masked unless the role sees them).
    pub fn search_addresses(&self, text: &str, limit: u32) -> Result<Vec<AddressHit>> {
        let q = search::query(text);
        let mut sql = String::from("SELECT doc_id FROM records WHERE kind = 'address'");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(fts) = q.fts {
            sql.push_str(
                " AND rowid IN (SELECT rowid FROM record_search WHERE record_search MATCH ?)",
            );
            args.push(fts.into());
        }
        for c in q.singles {
            sql.push_str(" AND words LIKE ?");
            args.push(format!("%{c}%").into());
        }
        if args.is_empty() {
            return Ok(Vec::new());
        }
        sql.push_str(" ORDER BY title LIMIT ?");
        args.push(i64::from(limit.min(500)).into());
        let ids: Vec<String> = {
            let conn = self.lock();
            let mut stmt = conn.prepare(&sql)?;
            stmt.query_map(rusqlite::params_from_iter(args), |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        ids.iter().map(|id| self.hit(id, None)).collect()
    }

    /// Addresses within `radius_m` of `point`, nearest first.
    pub fn addresses_near(
        &self,
        point: LatLon,
        radius_m: f64,
        limit: u32,
    ) -> Result<Vec<AddressHit>> {
        if !point.is_valid() || !radius_m.is_finite() || radius_m <= 0.0 {
            return Err(BaseError::Field {
                field: "位置 point",
                problem_zh: "需要有效的位置和半径",
                problem_en: "a valid position and radius are needed",
            }
            .into());
        }
        // A box around the point on the index, then the exact distance.
        let dlat = radius_m / 111_000.0;
        let dlon = radius_m / (111_000.0 * point.lat.to_radians().cos().max(0.01));
        let rows: Vec<(String, f64, f64)> = {
            let conn = self.lock();
            let mut stmt = conn.prepare_cached(
                "SELECT doc_id, lat, lon FROM records
                 WHERE kind = 'address' AND lat BETWEEN ?1 AND ?2 AND lon BETWEEN ?3 AND ?4",
            )?;
            stmt.query_map(
                params![
                    point.lat - dlat,
                    point.lat + dlat,
                    point.lon - dlon,
                    point.lon + dlon
                ],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?
            .collect::<rusqlite::Result<_>>()?
        };
        let mut near: Vec<(f64, String)> = rows
            .into_iter()
            .map(|(id, lat, lon)| (haversine_m(point, LatLon { lat, lon }), id))
            .filter(|(d, _)| *d <= radius_m)
            .collect();
        near.sort_by(|a, b| a.0.total_cmp(&b.0));
        near.truncate(limit as usize);
        near.into_iter()
            .map(|(d, id)| self.hit(&id, Some(d)))
            .collect()
    }

    fn hit(&self, doc_id: &str, distance_m: Option<f64>) -> Result<AddressHit> {
        let doc = self.record_doc(doc_id)?;
        let details = doc.details::<AddressRecord>()?;
        let a = fold_address(&details, &doc.entries::<AddressRecord>()?).for_role(self.config.role);
        Ok(AddressHit {
            code: a.details.code.clone(),
            text: a.details.text.clone(),
            grid_id: a.details.grid_id.clone(),
            point: a.details.point,
            distance_m,
            residents: a.residents().map(|p| p.person.name.clone()).collect(),
            enterprises: a
                .open_enterprises()
                .map(|e| e.enterprise.name.clone())
                .collect(),
        })
    }

    /// The addresses of a grid with their last completed visit; `due` when none finished in
    /// the last `days` days before `now_ms`. Due addresses first, longest unvisited first.
    pub fn patrol_list(&self, grid_id: &str, days: u32, now_ms: i64) -> Result<Vec<PatrolItem>> {
        let since = now_ms - i64::from(days) * 86_400_000;
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT a.subject, a.title,
                    (SELECT MAX(v.done_at) FROM records v
                     WHERE v.kind = 'visit' AND v.subject = a.subject AND v.grid_id = a.grid_id
                       AND v.done_at IS NOT NULL)
             FROM records a WHERE a.kind = 'address' AND a.grid_id = ?1",
        )?;
        let mut items: Vec<PatrolItem> = stmt
            .query_map(params![grid_id], |r| {
                let last: Option<i64> = r.get(2)?;
                Ok(PatrolItem {
                    code: r.get(0)?,
                    text: r.get(1)?,
                    last_visit_ms: last,
                    due: last.is_none_or(|t| t < since),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        items.sort_by(|a, b| {
            b.due
                .cmp(&a.due)
                .then(a.last_visit_ms.cmp(&b.last_visit_ms))
                .then(a.code.cmp(&b.code))
        });
        Ok(items)
    }

    /// The current version of every template the phone holds.
    pub fn templates(&self) -> Result<Vec<Template>> {
        let ids: Vec<String> = {
            let conn = self.lock();
            let mut stmt = conn.prepare_cached(
                "SELECT doc_id FROM records WHERE kind = 'template' ORDER BY doc_id",
            )?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        let mut out = Vec::new();
        for id in ids {
            let doc = self.record_doc(&id)?;
            let details = doc.details::<TemplateRecord>()?;
            if let Some(t) = current_template(&details, &doc.entries::<TemplateRecord>()?) {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// The current version of one template.
    pub fn template(&self, template_id: &str) -> Result<Template> {
        let id = template_doc_id(template_id);
        let doc = self.record_doc(&id)?;
        let details = doc.details::<TemplateRecord>()?;
        current_template(&details, &doc.entries::<TemplateRecord>()?).ok_or(Error::NotFound(id))
    }

    /// Starts a visit: checks in at the address with the device's location (none: refused
    /// with [`ChecklistError::NoLocation`]; farther than `max_m`: kept, flagged off-site with
    /// the distance) on the template's current version, which the visit keeps to the end.
    pub fn start_visit(
        &self,
        visit_id: &str,
        address_code: &str,
        template_id: &str,
        at: Moment,
        max_m: f64,
    ) -> Result<Visit> {
        if !may_patrol(self.config.role) {
            return Err(Error::Checklist(ChecklistError::BadTemplate(format!(
                "{}不做巡查 / the {} role does not patrol",
                self.config.role.label_zh(),
                self.config.role.code()
            ))));
        }
        let address = self.address(address_code)?;
        let template = self.template(template_id)?;
        let checked = check_in(address.details.point, at.location, max_m)?;
        let location = at.location.ok_or(ChecklistError::NoLocation)?;
        let details = VisitDetails {
            visit_id: visit_id.to_owned(),
            inspector: self.config.user_id.clone(),
            address_code: address.details.code.clone(),
            grid_id: address.details.grid_id.clone(),
            template,
        };
        let first = VisitStep::CheckedIn {
            location,
            distance_m: checked.distance_m,
            off_site: checked.off_site,
        };
        self.create_record::<VisitRecord, _>(
            &visit_doc_id(visit_id),
            &details,
            vec![first],
            at,
            // A retried tap: the visit as it is.
            |doc| {
                Ok(fold_visit(
                    &doc.details::<VisitRecord>()?,
                    &doc.entries::<VisitRecord>()?,
                ))
            },
            |entries| fold_visit(&details, &entries),
        )
    }

    /// A visit as it stands.
    pub fn visit(&self, visit_id: &str) -> Result<Visit> {
        let doc = self.record_doc(&visit_doc_id(visit_id))?;
        Ok(fold_visit(
            &doc.details::<VisitRecord>()?,
            &doc.entries::<VisitRecord>()?,
        ))
    }

    /// Answers one item on the visit's own template version. An answer that fires the item's
    /// hazard rule opens a case at once — category, priority and title from the rule, the
    /// address, grid and location of the visit, the answer's photos — linked to the visit, in
    /// the same transaction.
    pub fn answer_visit(
        &self,
        visit_id: &str,
        item_id: &str,
        answer: Answer,
        at: Moment,
    ) -> Result<VisitAnswer> {
        let id = visit_doc_id(visit_id);
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let mut doc = self.existing_record(&tx, &id)?;
        let details = doc.details::<VisitRecord>()?;
        let visit = fold_visit(&details, &doc.entries::<VisitRecord>()?);
        self.check_visit_open(&visit)?;
        details.template.check_answer(item_id, &answer)?;
        let before = doc.heads();
        let step = VisitStep::Answered {
            item_id: item_id.to_owned(),
            answer: answer.clone(),
        };
        doc.append::<VisitRecord>(vec![step], &self.stamp(at))?;
        let mut answers = visit.answers.clone();
        answers.insert(item_id.to_owned(), answer.clone());
        let fired = details
            .template
            .hazards(&answers)
            .into_iter()
            .find(|(item, _)| item.id == item_id)
            .map(|(item, rule)| (item.clone(), rule.clone()));
        let mut hazard_case = None;
        if let Some((item, rule)) = fired.filter(|_| !visit.hazard_cases.contains_key(item_id)) {
            // Within this transaction: the connection is held.
            let address_text = self
                .load_record(&tx, &address_doc_id(&details.address_code))?
                .and_then(|doc| doc.details::<AddressRecord>().ok())
                .map_or(details.address_code.clone(), |a| a.text);
            let photos = visit
                .answers
                .values()
                .chain([&answer])
                .filter_map(|a| match a {
                    Answer::Photos(p) => Some(p.clone()),
                    _ => None,
                })
                .flatten()
                .collect();
            let case_id = uuid::Uuid::new_v4().to_string();
            let new = NewCase {
                id: case_id.clone(),
                category: rule.category,
                source: self
                    .config
                    .role
                    .report_source()
                    .unwrap_or(Source::GridInspector),
                title: rule.title.clone(),
                description: format!(
                    "巡查发现：{}（{}）/ found on patrol: item {} at {}",
                    item.text, address_text, item.id, details.address_code
                ),
                location: at.location,
                address_id: Some(details.address_code.clone()),
                grid_id: details.grid_id.clone(),
                photos,
                priority: rule.priority,
            };
            hazard_case = Some(self.report_in(&tx, new, at)?);
            doc.append::<VisitRecord>(
                vec![VisitStep::HazardReported {
                    item_id: item_id.to_owned(),
                    case_id,
                }],
                &self.stamp(at),
            )?;
        }
        self.write_record(&tx, &mut doc, Some(&before))?;
        tx.commit()?;
        Ok(VisitAnswer {
            visit: fold_visit(&details, &doc.entries::<VisitRecord>()?),
            hazard_case,
        })
    }

    /// Notes something outside the checklist.
    pub fn add_finding(
        &self,
        visit_id: &str,
        text: &str,
        photos: Vec<String>,
        at: Moment,
    ) -> Result<Visit> {
        self.visit_step(
            visit_id,
            VisitStep::Finding {
                text: text.trim().to_owned(),
                photos,
            },
            at,
        )
    }

    /// Checks out: refused with [`ChecklistError::Unanswered`] while required items are open.
    pub fn finish_visit(&self, visit_id: &str, at: Moment) -> Result<Visit> {
        self.visit_step(visit_id, VisitStep::CheckedOut, at)
    }

    fn visit_step(&self, visit_id: &str, step: VisitStep, at: Moment) -> Result<Visit> {
        let id = visit_doc_id(visit_id);
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let mut doc = self.existing_record(&tx, &id)?;
        let details = doc.details::<VisitRecord>()?;
        let visit = fold_visit(&details, &doc.entries::<VisitRecord>()?);
        self.check_visit_open(&visit)?;
        step.validate(&details.template)?;
        if step == VisitStep::CheckedOut {
            details.template.check_out(&visit.answers)?;
        }
        let before = doc.heads();
        doc.append::<VisitRecord>(vec![step], &self.stamp(at))?;
        self.write_record(&tx, &mut doc, Some(&before))?;
        tx.commit()?;
        Ok(fold_visit(&details, &doc.entries::<VisitRecord>()?))
    }

    fn check_visit_open(&self, visit: &Visit) -> Result<()> {
        if visit.details.inspector != self.config.user_id {
            return Err(Error::Checklist(ChecklistError::BadTemplate(
                "只有巡查员本人可以记录这次巡查 / only the visit's inspector records it".into(),
            )));
        }
        if visit.checked_out_at_ms.is_some() {
            return Err(Error::Checklist(ChecklistError::BadTemplate(
                "这次巡查已签退 / the visit is checked out".into(),
            )));
        }
        Ok(())
    }

    /// Opens a mediation file, offline.
    pub fn open_mediation(&self, details: MediationDetails, at: Moment) -> Result<MediationFile> {
        if !may_mediate(self.config.role) {
            return Err(Error::Mediation(
                crate::mediation::MediationError::Incomplete(
                    "调解员或调解小组成员 / a mediator or team member",
                ),
            ));
        }
        details.validate(yyyymmdd(at.at_ms))?;
        let role = self.config.role;
        self.create_record::<MediationRecord, _>(
            &mediation_doc_id(&details.file_id),
            &details,
            Vec::new(),
            at,
            |doc| {
                let file = fold_mediation(
                    &doc.details::<MediationRecord>()?,
                    &doc.entries::<MediationRecord>()?,
                );
                Ok(file.for_role(role))
            },
            |_| fold_mediation(&details, &[]).for_role(role),
        )
    }

    /// Records a mediation step, checked against the file as it stands (the ladder one rung
    /// at a time unless a reason is given; confirmation only after an agreement, within 30
    /// days).
    pub fn record_mediation(
        &self,
        file_id: &str,
        step: MediationStep,
        at: Moment,
    ) -> Result<MediationFile> {
        if !may_mediate(self.config.role) {
            return Err(Error::Mediation(
                crate::mediation::MediationError::Incomplete(
                    "调解员或调解小组成员 / a mediator or team member",
                ),
            ));
        }
        let id = mediation_doc_id(file_id);
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let mut doc = self.existing_record(&tx, &id)?;
        let details = doc.details::<MediationRecord>()?;
        let file = fold_mediation(&details, &doc.entries::<MediationRecord>()?);
        let mut state: MediationState = file.state.clone();
        state.apply(&step)?;
        let before = doc.heads();
        doc.append::<MediationRecord>(vec![step], &self.stamp(at))?;
        self.write_record(&tx, &mut doc, Some(&before))?;
        tx.commit()?;
        Ok(fold_mediation(&details, &doc.entries::<MediationRecord>()?).for_role(self.config.role))
    }

    /// A mediation file, parties masked unless the role sees personal data.
    pub fn mediation_file(&self, file_id: &str) -> Result<MediationFile> {
        let doc = self.record_doc(&mediation_doc_id(file_id))?;
        let file = fold_mediation(
            &doc.details::<MediationRecord>()?,
            &doc.entries::<MediationRecord>()?,
        );
        Ok(file.for_role(self.config.role))
    }

    /// The mediation files on the phone, latest first.
    pub fn mediation_files(&self) -> Result<Vec<MediationSummary>> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT doc_id, grid_id, title, done_at IS NOT NULL, updated_at FROM records
             WHERE kind = 'mediation' ORDER BY updated_at DESC, doc_id",
        )?;
        let rows = stmt.query_map([], |r| {
            let doc_id: String = r.get(0)?;
            Ok(MediationSummary {
                file_id: doc_id
                    .strip_prefix(DocKind::Mediation.prefix())
                    .unwrap_or(&doc_id)
                    .to_owned(),
                grid_id: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                title: r.get(2)?,
                ended: r.get(3)?,
                updated_at_ms: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Loads a record that must exist, in a transaction.
    fn existing_record(&self, tx: &Connection, doc_id: &str) -> Result<RecordDoc> {
        self.load_record(tx, doc_id)?
            .ok_or_else(|| Error::NotFound(doc_id.to_owned()))
    }

    /// Loads a record for reading.
    fn record_doc(&self, doc_id: &str) -> Result<RecordDoc> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let doc = self.load_record(&tx, doc_id);
        // A stored record that stopped loading was moved to the quarantine: keep that.
        tx.commit()?;
        doc?.ok_or_else(|| Error::NotFound(doc_id.to_owned()))
    }

    /// Writes a record's bytes and its index row.
    pub(super) fn write_record(
        &self,
        tx: &Connection,
        doc: &mut RecordDoc,
        before: Option<&[ChangeHash]>,
    ) -> Result<()> {
        let row = index_row(doc)?;
        let kind = doc.kind().code();
        write_bytes(
            tx,
            doc,
            kind,
            before,
            row.updated_at,
            self.config.compact_after_chunks,
        )?;
        write_index_row(tx, doc.id(), &row)
    }

    /// Applies a record's remote changes; returns whether it changed.
    pub(super) fn apply_record(
        &self,
        tx: &Connection,
        doc_id: &str,
        bytes: &[u8],
        existing: Option<RecordDoc>,
    ) -> Result<(bool, RecordDoc)> {
        let (mut doc, before) = match existing {
            Some(mut doc) => {
                let before = doc.heads();
                doc.apply_in_place(bytes)?;
                (doc, Some(before))
            }
            None => {
                let mut doc = RecordDoc::load(doc_id, bytes)?;
                doc.set_actor(self.actor());
                (doc, None)
            }
        };
        if before.as_deref() == Some(doc.heads().as_slice()) {
            return Ok((false, doc));
        }
        self.write_record(tx, &mut doc, before.as_deref())?;
        Ok((true, doc))
    }
}

struct IndexRow {
    grid_id: Option<String>,
    subject: Option<String>,
    actor: Option<String>,
    title: String,
    words: String,
    point: Option<LatLon>,
    started_at: Option<i64>,
    done_at: Option<i64>,
    updated_at: i64,
}

/// The index row of a record (checks that it reads as its kind: a record that does not is
/// refused before it is written).
fn index_row(doc: &RecordDoc) -> Result<IndexRow> {
    Ok(match doc.kind() {
        DocKind::Address => {
            let d = doc.details::<AddressRecord>()?;
            let a = fold_address(&d, &doc.entries::<AddressRecord>()?);
            let mut words = a.details.text.clone();
            for p in a.people.values() {
                words.push(' ');
                words.push_str(&p.person.name);
            }
            for e in a.enterprises.values() {
                words.push(' ');
                words.push_str(&e.enterprise.name);
            }
            IndexRow {
                grid_id: Some(a.details.grid_id.clone()),
                subject: Some(a.details.code.clone()),
                actor: None,
                title: a.details.text.clone(),
                words,
                point: Some(a.details.point),
                started_at: None,
                done_at: None,
                updated_at: a.updated_at_ms,
            }
        }
        DocKind::Visit => {
            let d = doc.details::<VisitRecord>()?;
            let v = fold_visit(&d, &doc.entries::<VisitRecord>()?);
            IndexRow {
                grid_id: Some(d.grid_id.clone()),
                subject: Some(d.address_code.clone()),
                actor: Some(d.inspector.clone()),
                title: d.template.title.clone(),
                words: String::new(),
                point: None,
                started_at: v.checked_in_at_ms,
                done_at: v.checked_out_at_ms,
                updated_at: v.checked_out_at_ms.or(v.checked_in_at_ms).unwrap_or(0),
            }
        }
        DocKind::Mediation => {
            let d = doc.details::<MediationRecord>()?;
            let f = fold_mediation(&d, &doc.entries::<MediationRecord>()?);
            IndexRow {
                grid_id: Some(d.grid_id.clone()),
                subject: d.case_id.clone(),
                actor: Some(d.team.mediator.clone()),
                title: d.summary.chars().take(60).collect(),
                words: String::new(),
                point: None,
                started_at: None,
                done_at: f.state.outcome.map(|_| f.updated_at_ms),
                updated_at: f.updated_at_ms,
            }
        }
        DocKind::Template => {
            let d = doc.details::<TemplateRecord>()?;
            let t = current_template(&d, &doc.entries::<TemplateRecord>()?);
            IndexRow {
                grid_id: None,
                subject: Some(d.template_id.clone()),
                actor: None,
                title: t.map_or(d.template_id.clone(), |t| t.title),
                words: String::new(),
                point: None,
                started_at: None,
                done_at: None,
                updated_at: 0,
            }
        }
        DocKind::Case => {
            return Err(Error::Malformed {
                doc_id: doc.id().to_owned(),
                detail: "a case is not a record".into(),
            });
        }
    })
}

fn write_index_row(tx: &Connection, doc_id: &str, row: &IndexRow) -> Result<()> {
    let kind = DocKind::of(doc_id).code();
    let rowid: i64 = tx
        .prepare_cached(
            "INSERT INTO records (doc_id, kind, grid_id, subject, actor, title, words, lat, lon, started_at, done_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (doc_id) DO UPDATE SET grid_id = excluded.grid_id, subject = excluded.subject,
                actor = excluded.actor, title = excluded.title, words = excluded.words, lat = excluded.lat,
                lon = excluded.lon, started_at = excluded.started_at, done_at = excluded.done_at,
                updated_at = excluded.updated_at
             RETURNING rowid",
        )?
        .query_row(
            params![
                doc_id,
                kind,
                row.grid_id,
                row.subject,
                row.actor,
                row.title,
                row.words,
                row.point.map(|p| p.lat),
                row.point.map(|p| p.lon),
                row.started_at,
                row.done_at,
                row.updated_at
            ],
            |r| r.get(0),
        )?;
    if row.words.is_empty() {
        return Ok(());
    }
    let terms = search::index_terms(&row.words);
    let current: Option<String> = tx
        .prepare_cached("SELECT terms FROM record_search WHERE rowid = ?1")?
        .query_row([rowid], |r| r.get(0))
        .optional()?;
    if current.as_deref() != Some(terms.as_str()) {
        tx.prepare_cached("DELETE FROM record_search WHERE rowid = ?1")?
            .execute([rowid])?;
        tx.prepare_cached("INSERT INTO record_search (rowid, terms) VALUES (?1, ?2)")?
            .execute(params![rowid, terms])?;
    }
    Ok(())
}
