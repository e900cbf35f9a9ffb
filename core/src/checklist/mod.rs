//! Patrol checklists (巡查清单): versioned templates per subject, the answers of a visit checked
//! against the version it started on, check-in distance, and the hazards a failed item raises.
//!
//! A template never changes in place: an edit is a new version, and a visit records the
//! version it used, so a template change never breaks a visit in progress ("a draft finishes
//! on its version"). The types here are the rules; visits as documents and the server's
//! template authoring build on them.

mod standard;
mod visit;

pub use standard::standard_templates;
pub use visit::{
    TemplateChange, TemplateDetails, TemplateRecord, Visit, VisitDetails, VisitRecord, VisitStep,
    current_template, fold_visit, may_patrol, may_publish_templates, template_doc_id, visit_doc_id,
};

use crate::case::{Category, Priority};
use crate::geo::{LatLon, haversine_m};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What is being patrolled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Subject {
    /// 住户.
    Household,
    /// 经营类企业 (shops, restaurants).
    BusinessEnterprise,
    /// 管理类 (property management, warehouses).
    ManagementEnterprise,
    /// 服务类 (services).
    ServiceEnterprise,
    /// 工业类 (factories).
    IndustrialEnterprise,
    /// 专项: fire safety.
    FireSafety,
    /// 专项: group rentals (群租房).
    GroupRental,
}

/// The kind of answer an item takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ItemKind {
    /// 是/否.
    YesNo,
    /// A number within bounds, in a unit.
    Number {
        /// Smallest accepted.
        min: f64,
        /// Largest accepted.
        max: f64,
        /// Unit shown (人, 个, m²).
        unit: String,
    },
    /// One of the options.
    Choice {
        /// The options.
        options: Vec<String>,
    },
    /// Free text.
    Text,
    /// A photo must be taken.
    Photo,
}

/// When an answer raises a hazard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Trigger {
    /// A yes/no answer equal to this.
    Answer(bool),
    /// A number above this.
    Above(f64),
    /// One of these choices.
    OneOf(Vec<String>),
}

/// The case a failed item opens automatically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HazardRule {
    /// When.
    pub when: Trigger,
    /// The case's category.
    pub category: Category,
    /// Its priority.
    pub priority: Priority,
    /// Its title.
    pub title: String,
}

/// One item of a checklist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Stable id within the template (kept across versions when the question is the same).
    pub id: String,
    /// The question.
    pub text: String,
    /// The answer it takes.
    pub kind: ItemKind,
    /// Must be answered before check-out.
    pub required: bool,
    /// The case a bad answer opens.
    pub hazard: Option<HazardRule>,
}

/// A checklist template at one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// Template id (`household`, `fire-safety`, …).
    pub id: String,
    /// Version, from 1; every change is a new version.
    pub version: u32,
    /// What it patrols.
    pub subject: Subject,
    /// Title.
    pub title: String,
    /// Items, in order.
    pub items: Vec<Item>,
}

/// An answer given at the door.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Answer {
    /// 是/否.
    YesNo(bool),
    /// A number.
    Number(f64),
    /// A choice.
    Choice(String),
    /// Text.
    Text(String),
    /// Photo hashes.
    Photos(Vec<String>),
}

/// What is wrong with a template, a visit's answers, or a check-in.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChecklistError {
    /// The answer names an item the visit's template version does not have.
    #[error(
        "第 {version} 版清单没有检查项 {item} / version {version} of the checklist has no item {item}"
    )]
    UnknownItem {
        /// The item id.
        item: String,
        /// The template version.
        version: u32,
    },
    /// The answer does not fit the item.
    #[error(
        "检查项 {item} 的回答不符合要求：{detail} / the answer to {item} does not fit: {detail}"
    )]
    BadAnswer {
        /// The item id.
        item: String,
        /// What is wrong.
        detail: String,
    },
    /// Required items left unanswered at check-out.
    #[error("还有必答项未完成：{0:?} / required items are unanswered: {0:?}")]
    Unanswered(Vec<String>),
    /// A check-in needs the device's location.
    #[error(
        "签到需要定位，请打开定位后重试 / check-in needs the device's location: turn location on"
    )]
    NoLocation,
    /// The distance a check-in may be from its address is not a positive number of metres.
    #[error("签到距离须为正数（米）/ the check-in distance must be a positive number of metres")]
    BadDistance,
    /// The template itself is inconsistent.
    #[error("清单模板无效：{0} / the checklist template is invalid: {0}")]
    BadTemplate(String),
}

impl Template {
    /// Checks the template: ids unique and non-empty, number bounds ordered, choices present,
    /// hazard triggers that fit their item.
    pub fn validate(&self) -> Result<(), ChecklistError> {
        let bad = |m: String| {
            Err(ChecklistError::BadTemplate(format!(
                "{} v{}: {m}",
                self.id, self.version
            )))
        };
        if self.version == 0 || self.items.is_empty() {
            return bad("版本从 1 起且至少一项 / version from 1 and at least one item".into());
        }
        let mut ids = BTreeSet::new();
        for item in &self.items {
            if item.id.trim().is_empty() || !ids.insert(item.id.as_str()) {
                return bad(format!(
                    "检查项编号重复或为空 / duplicate or empty item id {:?}",
                    item.id
                ));
            }
            match &item.kind {
                ItemKind::Number { min, max, .. }
                    if !(min.is_finite() && max.is_finite() && min <= max) =>
                {
                    return bad(format!("{}: min > max", item.id));
                }
                ItemKind::Choice { options } if options.is_empty() => {
                    return bad(format!("{}: 无选项 / no options", item.id));
                }
                _ => {}
            }
            if let Some(h) = &item.hazard {
                let fits = matches!(
                    (&h.when, &item.kind),
                    (Trigger::Answer(_), ItemKind::YesNo)
                        | (Trigger::Above(_), ItemKind::Number { .. })
                        | (Trigger::OneOf(_), ItemKind::Choice { .. })
                );
                if !fits {
                    return bad(format!(
                        "{}: 触发条件与题型不符 / the trigger does not fit the item",
                        item.id
                    ));
                }
            }
        }
        Ok(())
    }

    fn item(&self, id: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.id == id)
    }

    /// Checks one answer against this version.
    pub fn check_answer(&self, item_id: &str, answer: &Answer) -> Result<(), ChecklistError> {
        let item = self
            .item(item_id)
            .ok_or_else(|| ChecklistError::UnknownItem {
                item: item_id.to_owned(),
                version: self.version,
            })?;
        let bad = |detail: &str| {
            Err(ChecklistError::BadAnswer {
                item: item_id.to_owned(),
                detail: detail.to_owned(),
            })
        };
        match (&item.kind, answer) {
            (ItemKind::YesNo, Answer::YesNo(_)) | (ItemKind::Text, Answer::Text(_)) => Ok(()),
            (ItemKind::Number { min, max, .. }, Answer::Number(v)) => {
                if v.is_finite() && v >= min && v <= max {
                    Ok(())
                } else {
                    bad(&format!(
                        "须在 {min}–{max} 之间 / must be within {min}–{max}"
                    ))
                }
            }
            (ItemKind::Choice { options }, Answer::Choice(c)) => {
                if options.contains(c) {
                    Ok(())
                } else {
                    bad("不是可选项 / not one of the options")
                }
            }
            (ItemKind::Photo, Answer::Photos(p)) if !p.is_empty() => Ok(()),
            (ItemKind::Photo, Answer::Photos(_)) => bad("须拍照 / a photo is required"),
            _ => bad("回答类型不对 / wrong kind of answer"),
        }
    }

    /// Checks a visit's answers at check-out: each fits this version, every required item is
    /// answered.
    pub fn check_out(&self, answers: &BTreeMap<String, Answer>) -> Result<(), ChecklistError> {
        for (item, answer) in answers {
            self.check_answer(item, answer)?;
        }
        let missing: Vec<String> = self
            .items
            .iter()
            .filter(|i| i.required && !answers.contains_key(&i.id))
            .map(|i| i.id.clone())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ChecklistError::Unanswered(missing))
        }
    }

    /// The hazards the answers raise: one per item whose trigger fires, in item order.
    pub fn hazards<'a>(
        &'a self,
        answers: &BTreeMap<String, Answer>,
    ) -> Vec<(&'a Item, &'a HazardRule)> {
        self.items
            .iter()
            .filter_map(|item| {
                let rule = item.hazard.as_ref()?;
                let fired = match (&rule.when, answers.get(&item.id)?) {
                    (Trigger::Answer(want), Answer::YesNo(got)) => want == got,
                    (Trigger::Above(limit), Answer::Number(v)) => v > limit,
                    (Trigger::OneOf(bad), Answer::Choice(c)) => bad.contains(c),
                    _ => false,
                };
                fired.then_some((item, rule))
            })
            .collect()
    }
}

/// A check-in at an address.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CheckIn {
    /// Distance from the address, metres.
    pub distance_m: f64,
    /// Farther than allowed: kept, but flagged as off-site.
    pub off_site: bool,
}

/// Checks in at `address` from the device's `location` (none: refused), allowing `max_m`
/// metres (plus the fix's accuracy, up to 100 m more: a phone indoors is not off-site).
pub fn check_in(
    address: LatLon,
    location: Option<crate::case::Location>,
    max_m: f64,
) -> Result<CheckIn, ChecklistError> {
    if !(max_m.is_finite() && max_m > 0.0) {
        return Err(ChecklistError::BadDistance);
    }
    let location = location
        .filter(crate::case::Location::is_valid)
        .ok_or(ChecklistError::NoLocation)?;
    let distance_m = haversine_m(address, location.point);
    Ok(CheckIn {
        distance_m,
        off_site: distance_m > max_m + location.accuracy_m.min(100.0),
    })
}
