//! The standard-address document (一标多实): one standard address and everything attached to
//! it — houses, the people living there, the enterprises operating there — as a record
//! document whose history is every addition, correction, move-out and closure made at the
//! door. Nothing is deleted: a person who moved out stays, with the date.
//!
//! Concurrent corrections merge field by field: a correction carries only the fields it
//! changes, so two inspectors who fix different fields of one person offline both land; where
//! they fix the same field, the later entry in fold order wins and the other stays in the
//! history, shown.

use super::{CreditCode, IdError, ResidentId};
use crate::case::Role;
use crate::doc::{DocKind, Entry, Record};
use crate::geo::LatLon;
use crate::privacy::{mask_id, mask_name, mask_phone, sees_personal_data};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The standard-address record kind.
#[derive(Debug)]
pub struct AddressRecord;

impl Record for AddressRecord {
    const KIND: DocKind = DocKind::Address;
    const SCHEMA: i64 = 1;
    type Details = AddressDetails;
    type Body = AddressChange;
}

/// The document id of a standard address code.
pub fn address_doc_id(code: &str) -> String {
    format!("{}{code}", DocKind::Address.prefix())
}

/// The standard address as registered (标准地址).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddressDetails {
    /// Standard address code.
    pub code: String,
    /// Full text, e.g. 松陵街道流虹路 88 号 3 幢 2 单元 301 室.
    pub text: String,
    /// WGS-84 position of the door.
    pub point: LatLon,
    /// The grid it belongs to.
    pub grid_id: String,
}

/// What a house is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HouseUse {
    /// 住宅.
    Residential,
    /// 商用.
    Commercial,
    /// 商住两用.
    Mixed,
    /// 工业厂房.
    Industrial,
    /// 其他.
    Other,
}

/// Who lives in it on what terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tenure {
    /// 自住.
    OwnerOccupied,
    /// 出租.
    Rented,
    /// 群租 (several unrelated tenants).
    GroupRental,
    /// 空置.
    Vacant,
}

/// A house (实有房屋).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct House {
    /// Room or unit label, e.g. 301.
    pub label: String,
    /// Use.
    pub usage: HouseUse,
    /// Floor area, m².
    pub area_m2: f64,
    /// Tenure.
    pub tenure: Tenure,
}

/// Registered versus actual residence (人户一致 or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Residency {
    /// 户籍人口, living here.
    RegisteredResident,
    /// 户籍在此但不住 (人在户不在).
    RegisteredAbsent,
    /// 流动人口 / 实住非户籍.
    NonRegistered,
}

/// A person (实有人口).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    /// Name.
    pub name: String,
    /// Resident ID number (checked, 18 characters).
    pub id_number: String,
    /// Mobile number.
    #[serde(default)]
    pub phone: Option<String>,
    /// Registered versus actual.
    pub residency: Residency,
    /// The house they live in, if recorded.
    #[serde(default)]
    pub house_id: Option<String>,
    /// Move-in date, YYYY-MM-DD.
    #[serde(default)]
    pub moved_in: Option<String>,
}

/// The four enterprise types of the grid work (四类企业).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnterpriseKind {
    /// 经营类.
    Business,
    /// 管理类.
    Management,
    /// 服务类.
    Service,
    /// 工业类.
    Industrial,
}

impl EnterpriseKind {
    /// The patrol template subject for this type.
    pub fn subject(self) -> crate::checklist::Subject {
        use crate::checklist::Subject;
        match self {
            EnterpriseKind::Business => Subject::BusinessEnterprise,
            EnterpriseKind::Management => Subject::ManagementEnterprise,
            EnterpriseKind::Service => Subject::ServiceEnterprise,
            EnterpriseKind::Industrial => Subject::IndustrialEnterprise,
        }
    }
}

/// An enterprise (实有单位).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enterprise {
    /// Registered name.
    pub name: String,
    /// Unified social credit code (checked).
    pub credit_code: String,
    /// One of the four types.
    pub kind: EnterpriseKind,
    /// Contact person.
    pub contact: String,
    /// Contact phone.
    #[serde(default)]
    pub phone: Option<String>,
    /// Its safety-responsibility list (责任清单).
    #[serde(default)]
    pub responsibilities: Vec<String>,
}

/// Fields a correction of a person changes (absent: unchanged).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersonPatch {
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Corrected ID number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_number: Option<String>,
    /// New phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// New residency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residency: Option<Residency>,
    /// New house.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub house_id: Option<String>,
}

/// Fields a correction of a house changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HousePatch {
    /// New use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<HouseUse>,
    /// New area.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area_m2: Option<f64>,
    /// New tenure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenure: Option<Tenure>,
}

/// Fields a correction of an enterprise changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EnterprisePatch {
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// New phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// New responsibility list (replaces the old one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responsibilities: Option<Vec<String>>,
}

/// One change made at the door.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AddressChange {
    /// The address text or position was wrong.
    AddressCorrected {
        /// New text.
        #[serde(default)]
        text: Option<String>,
        /// New position.
        #[serde(default)]
        point: Option<LatLon>,
    },
    /// A house recorded.
    HouseAdded {
        /// New id (UUID).
        house_id: String,
        /// The house.
        house: House,
    },
    /// A house corrected.
    HouseCorrected {
        /// Which.
        house_id: String,
        /// What changed.
        patch: HousePatch,
    },
    /// A person recorded.
    PersonAdded {
        /// New id (UUID).
        person_id: String,
        /// The person.
        person: Person,
    },
    /// A person corrected.
    PersonCorrected {
        /// Which.
        person_id: String,
        /// What changed.
        patch: PersonPatch,
    },
    /// A person moved out: an event, never a deletion.
    PersonMovedOut {
        /// Who.
        person_id: String,
        /// YYYY-MM-DD.
        on: String,
        /// Where to, if known.
        #[serde(default)]
        to: Option<String>,
    },
    /// An enterprise recorded.
    EnterpriseAdded {
        /// New id (UUID).
        enterprise_id: String,
        /// The enterprise.
        enterprise: Enterprise,
    },
    /// An enterprise corrected.
    EnterpriseCorrected {
        /// Which.
        enterprise_id: String,
        /// What changed.
        patch: EnterprisePatch,
    },
    /// An enterprise closed or left.
    EnterpriseClosed {
        /// Which.
        enterprise_id: String,
        /// YYYY-MM-DD.
        on: String,
    },
}

/// Base data that cannot be saved as entered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BaseError {
    /// An ID number or credit code that fails its standard.
    #[error(transparent)]
    Id(#[from] IdError),
    /// A field that is empty, too long, or out of range.
    #[error("{field}：{problem_zh} / {field}: {problem_en}")]
    Field {
        /// Which field.
        field: &'static str,
        /// What is wrong (zh).
        problem_zh: &'static str,
        /// What is wrong (en).
        problem_en: &'static str,
    },
    /// The person, house or enterprise named is not at this address.
    #[error("此地址没有 {0} / there is no {0} at this address")]
    Unknown(String),
    /// The role may not change base data.
    #[error("{0} 不能修改基础数据 / the {0} role cannot change base data")]
    RoleNotAllowed(&'static str),
}

const MAX_FIELD_CHARS: usize = 200;

fn text_field(field: &'static str, value: &str) -> Result<(), BaseError> {
    let n = value.trim().chars().count();
    if n == 0 {
        return Err(BaseError::Field {
            field,
            problem_zh: "不能为空",
            problem_en: "must not be empty",
        });
    }
    if n > MAX_FIELD_CHARS
        || value
            .chars()
            .any(|c| c.is_control() || crate::text::is_unfit(c))
    {
        return Err(BaseError::Field {
            field,
            problem_zh: "过长或含控制字符",
            problem_en: "too long or holds control characters",
        });
    }
    Ok(())
}

fn phone_field(value: Option<&str>) -> Result<(), BaseError> {
    let Some(phone) = value else { return Ok(()) };
    let digits = phone.trim();
    let ok = (7..=20).contains(&digits.len())
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || c == '-' || c == '+' || c == ' ');
    if ok {
        Ok(())
    } else {
        Err(BaseError::Field {
            field: "电话 phone",
            problem_zh: "应为 7–20 位数字",
            problem_en: "7–20 digits expected",
        })
    }
}

fn date_field(field: &'static str, value: &str) -> Result<(), BaseError> {
    let parsed = (value.len() == 10 && value.as_bytes()[4] == b'-' && value.as_bytes()[7] == b'-')
        .then(|| format!("{}{}{}", &value[..4], &value[5..7], &value[8..]))
        .and_then(|d| d.parse::<u32>().ok());
    if parsed.is_some_and(super::ids::valid_date) {
        Ok(())
    } else {
        Err(BaseError::Field {
            field,
            problem_zh: "日期应为 YYYY-MM-DD",
            problem_en: "a YYYY-MM-DD date expected",
        })
    }
}

fn area_field(area: f64) -> Result<(), BaseError> {
    if area.is_finite() && area > 0.0 && area < 1_000_000.0 {
        Ok(())
    } else {
        Err(BaseError::Field {
            field: "面积 area",
            problem_zh: "应为正数（平方米）",
            problem_en: "a positive number of m² expected",
        })
    }
}

/// The China-time date (YYYYMMDD) of UTC milliseconds.
pub fn yyyymmdd(at_ms: i64) -> u32 {
    // Days since 1970-01-01 in UTC+8, then the civil date (Hinnant's algorithm).
    let days = crate::day::day_of(at_ms);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    u32::try_from(y * 10_000 + m * 100 + d).unwrap_or(0)
}

impl AddressDetails {
    /// Checks the registered address.
    pub fn validate(&self) -> Result<(), BaseError> {
        text_field("地址编码 code", &self.code)?;
        if !self
            .code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(BaseError::Field {
                field: "地址编码 code",
                problem_zh: "只能含字母、数字和连字符",
                problem_en: "letters, digits and hyphens only",
            });
        }
        text_field("地址 text", &self.text)?;
        text_field("网格 grid", &self.grid_id)?;
        if !self.point.is_valid() {
            return Err(BaseError::Field {
                field: "位置 point",
                problem_zh: "不是有效的坐标",
                problem_en: "not a valid position",
            });
        }
        Ok(())
    }
}

impl AddressChange {
    /// Checks one change on its own (`today` YYYYMMDD bounds birth dates): ID numbers by
    /// their check digit, credit codes by theirs, names, phones, dates and areas by form.
    pub fn validate(&self, today: u32) -> Result<(), BaseError> {
        match self {
            AddressChange::AddressCorrected { text, point } => {
                if let Some(text) = text {
                    text_field("地址 text", text)?;
                }
                if point.is_some_and(|p| !p.is_valid()) {
                    return Err(BaseError::Field {
                        field: "位置 point",
                        problem_zh: "不是有效的坐标",
                        problem_en: "not a valid position",
                    });
                }
                Ok(())
            }
            AddressChange::HouseAdded { house_id, house } => {
                text_field("房屋编号 house id", house_id)?;
                text_field("房号 label", &house.label)?;
                area_field(house.area_m2)
            }
            AddressChange::HouseCorrected { house_id, patch } => {
                text_field("房屋编号 house id", house_id)?;
                patch.area_m2.map_or(Ok(()), area_field)
            }
            AddressChange::PersonAdded { person_id, person } => {
                text_field("人员编号 person id", person_id)?;
                text_field("姓名 name", &person.name)?;
                ResidentId::parse(&person.id_number, today)?;
                phone_field(person.phone.as_deref())?;
                if let Some(date) = &person.moved_in {
                    date_field("迁入日期 moved in", date)?;
                }
                Ok(())
            }
            AddressChange::PersonCorrected { person_id, patch } => {
                text_field("人员编号 person id", person_id)?;
                if let Some(name) = &patch.name {
                    text_field("姓名 name", name)?;
                }
                if let Some(id) = &patch.id_number {
                    ResidentId::parse(id, today)?;
                }
                phone_field(patch.phone.as_deref())
            }
            AddressChange::PersonMovedOut { person_id, on, .. } => {
                text_field("人员编号 person id", person_id)?;
                date_field("迁出日期 moved out", on)
            }
            AddressChange::EnterpriseAdded {
                enterprise_id,
                enterprise,
            } => {
                text_field("单位编号 enterprise id", enterprise_id)?;
                text_field("单位名称 name", &enterprise.name)?;
                text_field("联系人 contact", &enterprise.contact)?;
                CreditCode::parse(&enterprise.credit_code)?;
                phone_field(enterprise.phone.as_deref())
            }
            AddressChange::EnterpriseCorrected {
                enterprise_id,
                patch,
            } => {
                text_field("单位编号 enterprise id", enterprise_id)?;
                if let Some(name) = &patch.name {
                    text_field("单位名称 name", name)?;
                }
                phone_field(patch.phone.as_deref())
            }
            AddressChange::EnterpriseClosed { enterprise_id, on } => {
                text_field("单位编号 enterprise id", enterprise_id)?;
                date_field("注销日期 closed", on)
            }
        }
    }
}

/// Whether `role` may add or correct base data.
pub fn may_edit_base(role: Role) -> bool {
    matches!(
        role,
        Role::GridInspector
            | Role::ProfessionalInspector
            | Role::GridChief
            | Role::Operator
            | Role::System
    )
}

/// A person as the fold leaves them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonState {
    /// Id.
    pub person_id: String,
    /// Current data.
    pub person: Person,
    /// Moved out on (YYYY-MM-DD), if so.
    pub moved_out: Option<String>,
}

/// An enterprise as the fold leaves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnterpriseState {
    /// Id.
    pub enterprise_id: String,
    /// Current data.
    pub enterprise: Enterprise,
    /// Closed on, if so.
    pub closed: Option<String>,
}

/// An entry the fold kept but could not apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unapplied {
    /// The entry.
    pub entry_id: String,
    /// Why, for people.
    pub reason: String,
}

/// The address as its history leaves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Address {
    /// Registered data with corrections applied.
    pub details: AddressDetails,
    /// Houses by id.
    pub houses: BTreeMap<String, House>,
    /// People by id, including those who moved out.
    pub people: BTreeMap<String, PersonState>,
    /// Enterprises by id, including closed ones.
    pub enterprises: BTreeMap<String, EnterpriseState>,
    /// Entries kept but not applied.
    pub unapplied: Vec<Unapplied>,
    /// Latest entry time.
    pub updated_at_ms: i64,
    /// Entries in the history.
    pub entries: usize,
}

/// Folds an address's entries (already in fold order).
pub fn fold_address(details: &AddressDetails, entries: &[Entry<AddressChange>]) -> Address {
    let mut a = Address {
        details: details.clone(),
        houses: BTreeMap::new(),
        people: BTreeMap::new(),
        enterprises: BTreeMap::new(),
        unapplied: Vec::new(),
        updated_at_ms: 0,
        entries: entries.len(),
    };
    for entry in entries {
        a.updated_at_ms = a.updated_at_ms.max(entry.at_ms);
        let mut skip = |reason: String| {
            a.unapplied.push(Unapplied {
                entry_id: entry.id.clone(),
                reason,
            });
        };
        if !may_edit_base(entry.role) {
            skip(format!("role {} may not edit base data", entry.role.code()));
            continue;
        }
        match &entry.body {
            AddressChange::AddressCorrected { text, point } => {
                if let Some(text) = text {
                    a.details.text = text.clone();
                }
                if let Some(point) = point {
                    a.details.point = *point;
                }
            }
            AddressChange::HouseAdded { house_id, house } => {
                if a.houses.contains_key(house_id) {
                    skip(format!("house {house_id} added twice"));
                } else {
                    a.houses.insert(house_id.clone(), house.clone());
                }
            }
            AddressChange::HouseCorrected { house_id, patch } => match a.houses.get_mut(house_id) {
                Some(h) => {
                    h.usage = patch.usage.unwrap_or(h.usage);
                    h.area_m2 = patch.area_m2.unwrap_or(h.area_m2);
                    h.tenure = patch.tenure.unwrap_or(h.tenure);
                }
                None => skip(format!("no house {house_id}")),
            },
            AddressChange::PersonAdded { person_id, person } => {
                if a.people.contains_key(person_id) {
                    skip(format!("person {person_id} added twice"));
                } else {
                    a.people.insert(
                        person_id.clone(),
                        PersonState {
                            person_id: person_id.clone(),
                            person: person.clone(),
                            moved_out: None,
                        },
                    );
                }
            }
            // A correction applies whether or not the person has moved out: an edit made
            // at the same time as a move-out survives it.
            AddressChange::PersonCorrected { person_id, patch } => {
                match a.people.get_mut(person_id) {
                    Some(p) => {
                        let person = &mut p.person;
                        if let Some(v) = &patch.name {
                            person.name = v.clone();
                        }
                        if let Some(v) = &patch.id_number {
                            person.id_number = v.clone();
                        }
                        if let Some(v) = &patch.phone {
                            person.phone = Some(v.clone());
                        }
                        if let Some(v) = patch.residency {
                            person.residency = v;
                        }
                        if let Some(v) = &patch.house_id {
                            person.house_id = Some(v.clone());
                        }
                    }
                    None => skip(format!("no person {person_id}")),
                }
            }
            AddressChange::PersonMovedOut { person_id, on, .. } => {
                match a.people.get_mut(person_id) {
                    Some(p) if p.moved_out.is_none() => p.moved_out = Some(on.clone()),
                    Some(_) => skip(format!("person {person_id} already moved out")),
                    None => skip(format!("no person {person_id}")),
                }
            }
            AddressChange::EnterpriseAdded {
                enterprise_id,
                enterprise,
            } => {
                if a.enterprises.contains_key(enterprise_id) {
                    skip(format!("enterprise {enterprise_id} added twice"));
                } else {
                    a.enterprises.insert(
                        enterprise_id.clone(),
                        EnterpriseState {
                            enterprise_id: enterprise_id.clone(),
                            enterprise: enterprise.clone(),
                            closed: None,
                        },
                    );
                }
            }
            AddressChange::EnterpriseCorrected {
                enterprise_id,
                patch,
            } => match a.enterprises.get_mut(enterprise_id) {
                Some(e) => {
                    let ent = &mut e.enterprise;
                    if let Some(v) = &patch.name {
                        ent.name = v.clone();
                    }
                    if let Some(v) = &patch.contact {
                        ent.contact = v.clone();
                    }
                    if let Some(v) = &patch.phone {
                        ent.phone = Some(v.clone());
                    }
                    if let Some(v) = &patch.responsibilities {
                        ent.responsibilities = v.clone();
                    }
                }
                None => skip(format!("no enterprise {enterprise_id}")),
            },
            AddressChange::EnterpriseClosed { enterprise_id, on } => {
                match a.enterprises.get_mut(enterprise_id) {
                    Some(e) if e.closed.is_none() => e.closed = Some(on.clone()),
                    Some(_) => skip(format!("enterprise {enterprise_id} already closed")),
                    None => skip(format!("no enterprise {enterprise_id}")),
                }
            }
        }
    }
    a
}

impl Address {
    /// The address as `role` may see it: personal data masked unless the role needs it.
    pub fn for_role(&self, role: Role) -> Address {
        if sees_personal_data(role) {
            return self.clone();
        }
        let mut shown = self.clone();
        for p in shown.people.values_mut() {
            p.person.name = mask_name(&p.person.name);
            p.person.id_number = mask_id(&p.person.id_number);
            p.person.phone = p.person.phone.as_deref().map(mask_phone);
        }
        for e in shown.enterprises.values_mut() {
            e.enterprise.contact = mask_name(&e.enterprise.contact);
            e.enterprise.phone = e.enterprise.phone.as_deref().map(mask_phone);
        }
        shown
    }

    /// People living here now (not moved out).
    pub fn residents(&self) -> impl Iterator<Item = &PersonState> {
        self.people.values().filter(|p| p.moved_out.is_none())
    }

    /// Enterprises operating here now.
    pub fn open_enterprises(&self) -> impl Iterator<Item = &EnterpriseState> {
        self.enterprises.values().filter(|e| e.closed.is_none())
    }
}
