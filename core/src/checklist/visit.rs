//! Visits and templates as record documents.
//!
//! A **template** document (`tpl-<id>`) holds every published version of one checklist; the
//! command centre publishes, phones receive it read-only. A **visit** document
//! (`visit-<uuid>`) is one patrol of one address: it copies the template version it started
//! with into its details, so a template published while the inspector stands at the door
//! never changes the questions of the visit in progress, and the server can check every
//! answer against exactly the version the inspector saw.

use super::{Answer, CheckIn, ChecklistError, Template};
use crate::case::{Location, Role};
use crate::doc::{DocKind, Entry, Record};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The template record kind.
#[derive(Debug)]
pub struct TemplateRecord;

impl Record for TemplateRecord {
    const KIND: DocKind = DocKind::Template;
    const SCHEMA: i64 = 1;
    type Details = TemplateDetails;
    type Body = TemplateChange;
}

/// The document id of a template.
pub fn template_doc_id(template_id: &str) -> String {
    format!("{}{template_id}", DocKind::Template.prefix())
}

/// What a template document is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateDetails {
    /// Template id.
    pub template_id: String,
}

/// One published version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TemplateChange {
    /// A new version.
    Published {
        /// The template at that version.
        template: Template,
    },
}

/// Whether `role` may publish templates.
pub fn may_publish_templates(role: Role) -> bool {
    matches!(role, Role::Operator | Role::System)
}

/// The newest valid version among a template document's entries (none if no entry holds a
/// valid template of this id).
pub fn current_template(
    details: &TemplateDetails,
    entries: &[Entry<TemplateChange>],
) -> Option<Template> {
    entries
        .iter()
        .filter(|e| may_publish_templates(e.role))
        .map(|e| match &e.body {
            TemplateChange::Published { template } => template,
        })
        .filter(|t| t.id == details.template_id && t.validate().is_ok())
        .max_by_key(|t| t.version)
        .cloned()
}

/// The visit record kind.
#[derive(Debug)]
pub struct VisitRecord;

impl Record for VisitRecord {
    const KIND: DocKind = DocKind::Visit;
    const SCHEMA: i64 = 1;
    type Details = VisitDetails;
    type Body = VisitStep;
}

/// The document id of a visit.
pub fn visit_doc_id(visit_id: &str) -> String {
    format!("{}{visit_id}", DocKind::Visit.prefix())
}

/// A visit as started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisitDetails {
    /// Visit id (UUID).
    pub visit_id: String,
    /// The inspector.
    pub inspector: String,
    /// Standard address code.
    pub address_code: String,
    /// The address's grid.
    pub grid_id: String,
    /// The template version the visit uses, copied whole.
    pub template: Template,
}

/// One step of a visit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum VisitStep {
    /// 签到: where the inspector was.
    CheckedIn {
        /// The device's position.
        location: Location,
        /// Distance from the address, metres.
        distance_m: f64,
        /// Farther than allowed.
        off_site: bool,
    },
    /// An answer (a later answer to the same item replaces it).
    Answered {
        /// Item id.
        item_id: String,
        /// The answer.
        answer: Answer,
    },
    /// Something noticed outside the checklist.
    Finding {
        /// What.
        text: String,
        /// Photo hashes.
        #[serde(default)]
        photos: Vec<String>,
    },
    /// A failed item opened a case.
    HazardReported {
        /// The item.
        item_id: String,
        /// The case opened.
        case_id: String,
    },
    /// 签退.
    CheckedOut,
}

/// Whether `role` patrols.
pub fn may_patrol(role: Role) -> bool {
    matches!(
        role,
        Role::GridInspector | Role::ProfessionalInspector | Role::GridChief
    )
}

/// A visit as its history leaves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Visit {
    /// As started.
    pub details: VisitDetails,
    /// The check-in, once recorded.
    pub check_in: Option<CheckIn>,
    /// When checked in.
    pub checked_in_at_ms: Option<i64>,
    /// Answers by item.
    pub answers: BTreeMap<String, Answer>,
    /// Findings.
    pub findings: Vec<String>,
    /// Cases opened, by item.
    pub hazard_cases: BTreeMap<String, String>,
    /// When checked out.
    pub checked_out_at_ms: Option<i64>,
    /// Entries kept but not applied, with the reason.
    pub unapplied: Vec<crate::address::Unapplied>,
}

impl VisitStep {
    /// Checks one step against the visit's template version, on its own.
    pub fn validate(&self, template: &Template) -> Result<(), ChecklistError> {
        match self {
            VisitStep::CheckedIn {
                location,
                distance_m,
                ..
            } => {
                if !location.is_valid() {
                    return Err(ChecklistError::NoLocation);
                }
                if !distance_m.is_finite() || *distance_m < 0.0 {
                    return Err(ChecklistError::BadTemplate("distance".into()));
                }
                Ok(())
            }
            VisitStep::Answered { item_id, answer } => template.check_answer(item_id, answer),
            VisitStep::Finding { text, .. } => {
                if text.trim().is_empty() || text.chars().count() > 2000 {
                    Err(ChecklistError::BadAnswer {
                        item: "finding".into(),
                        detail: "发现内容不能为空且不超过 2000 字 / 1–2000 characters".into(),
                    })
                } else {
                    Ok(())
                }
            }
            VisitStep::HazardReported { item_id, .. } => {
                if template.items.iter().any(|i| &i.id == item_id) {
                    Ok(())
                } else {
                    Err(ChecklistError::UnknownItem {
                        item: item_id.clone(),
                        version: template.version,
                    })
                }
            }
            VisitStep::CheckedOut => Ok(()),
        }
    }
}

/// Folds a visit's entries (in fold order). Only the visit's own inspector's entries apply;
/// nothing applies before the check-in or after the check-out; a check-out with required
/// items unanswered is kept but not applied.
pub fn fold_visit(details: &VisitDetails, entries: &[Entry<VisitStep>]) -> Visit {
    let mut v = Visit {
        details: details.clone(),
        check_in: None,
        checked_in_at_ms: None,
        answers: BTreeMap::new(),
        findings: Vec::new(),
        hazard_cases: BTreeMap::new(),
        checked_out_at_ms: None,
        unapplied: Vec::new(),
    };
    for entry in entries {
        let mut skip = |reason: String| {
            v.unapplied.push(crate::address::Unapplied {
                entry_id: entry.id.clone(),
                reason,
            });
        };
        if entry.actor != details.inspector {
            skip("not the visit's inspector".into());
            continue;
        }
        if let Err(e) = entry.body.validate(&details.template) {
            skip(e.to_string());
            continue;
        }
        if v.checked_out_at_ms.is_some() {
            skip("after check-out".into());
            continue;
        }
        match &entry.body {
            VisitStep::CheckedIn {
                distance_m,
                off_site,
                ..
            } => {
                if v.check_in.is_some() {
                    skip("checked in twice".into());
                } else {
                    v.check_in = Some(CheckIn {
                        distance_m: *distance_m,
                        off_site: *off_site,
                    });
                    v.checked_in_at_ms = Some(entry.at_ms);
                }
            }
            _ if v.check_in.is_none() => skip("before check-in".into()),
            VisitStep::Answered { item_id, answer } => {
                v.answers.insert(item_id.clone(), answer.clone());
            }
            VisitStep::Finding { text, .. } => v.findings.push(text.clone()),
            VisitStep::HazardReported { item_id, case_id } => {
                v.hazard_cases.insert(item_id.clone(), case_id.clone());
            }
            VisitStep::CheckedOut => match details.template.check_out(&v.answers) {
                Ok(()) => v.checked_out_at_ms = Some(entry.at_ms),
                Err(e) => skip(e.to_string()),
            },
        }
    }
    v
}
