//! The core's own domain types, exposed as they are: each block mirrors a type of
//! `gridlink_core` for uniffi (`remote`), so the apps and the core share one definition and
//! nothing is copied field by field. The compiler checks every mirror against the real type.

use gridlink_core::address::{
    AddressChange, AddressDetails, Enterprise, EnterpriseKind, EnterprisePatch, House, HousePatch,
    HouseUse, Person, PersonPatch, Residency, Tenure, Unapplied,
};
use gridlink_core::case::{
    Category, DispatchTarget, EventKind, FlagReason, Level, Location, Priority, Role, Source,
    Status,
};
use gridlink_core::checklist::{Answer, HazardRule, Item, ItemKind, Subject, Template, Trigger};
use gridlink_core::geo::LatLon;
use gridlink_core::mediation::{
    Confirmation, DisputeType, MediationDetails, MediationStep, Outcome, Party, Rung, Side, Team,
};

#[uniffi::remote(Record)]
pub struct LatLon {
    pub lat: f64,
    pub lon: f64,
}

#[uniffi::remote(Record)]
pub struct Location {
    pub point: LatLon,
    pub accuracy_m: f64,
}

#[uniffi::remote(Enum)]
pub enum Category {
    Environment,
    FireHazard,
    IllegalConstruction,
    GroupRental,
    Sanitation,
    RoadMunicipal,
    PublicSecurity,
    Dispute,
    EnterpriseSafety,
    Other,
}

#[uniffi::remote(Enum)]
pub enum Source {
    GridInspector,
    ProfessionalInspector,
    Citizen,
    Analytics,
    Open311,
}

#[uniffi::remote(Enum)]
pub enum Priority {
    Urgent,
    Normal,
    Low,
}

#[uniffi::remote(Enum)]
pub enum Role {
    GridInspector,
    ProfessionalInspector,
    GridChief,
    Mediator,
    DepartmentHandler,
    LawEnforcement,
    Operator,
    Citizen,
    System,
}

#[uniffi::remote(Enum)]
pub enum Level {
    Grid,
    Village,
    Town,
    Department,
    LawEnforcement,
}

#[uniffi::remote(Enum)]
pub enum Status {
    Reported,
    Accepted,
    Dispatched,
    Handling,
    Resolved,
    Verified,
    Closed,
}

#[uniffi::remote(Enum)]
pub enum DispatchTarget {
    Department { code: String, name: String },
    LawEnforcement { code: String, name: String },
}

/// A step of a case's closed loop; the apps record them with `FieldApp::record`.
#[uniffi::remote(Enum)]
pub enum EventKind {
    Reported {
        photos: Vec<String>,
    },
    Accepted {
        assignee: Option<String>,
        due_at_ms: Option<i64>,
    },
    RejectedInvalid {
        reason: String,
    },
    DuplicateOf {
        case_id: String,
    },
    ResolvedInGrid {
        note: String,
    },
    Escalated {
        to: Level,
        reason: String,
    },
    Dispatched {
        target: DispatchTarget,
        due_at_ms: Option<i64>,
        note: String,
    },
    Returned {
        reason: String,
    },
    Handling {
        note: String,
    },
    Resolved {
        note: String,
    },
    Verified {
        note: String,
    },
    VerificationFailed {
        reason: String,
    },
    Closed {
        note: String,
    },
    Comment {
        text: String,
    },
    PhotoAdded {
        hash: String,
    },
}

#[uniffi::remote(Enum)]
pub enum FlagReason {
    RoleNotAllowed { role: Role },
    WrongStatus { status: Status },
    WrongLevel { level: Level },
    BeforeReport,
    AlreadyReported,
    Malformed { message: String },
    ConflictingId,
    SeparationOfDuties { message: String },
}

// ---- Patrol checklists ----

#[uniffi::remote(Enum)]
pub enum Subject {
    Household,
    BusinessEnterprise,
    ManagementEnterprise,
    ServiceEnterprise,
    IndustrialEnterprise,
    FireSafety,
    GroupRental,
}

#[uniffi::remote(Enum)]
pub enum ItemKind {
    YesNo,
    Number { min: f64, max: f64, unit: String },
    Choice { options: Vec<String> },
    Text,
    Photo,
}

#[uniffi::remote(Enum)]
pub enum Trigger {
    Answer(bool),
    Above(f64),
    OneOf(Vec<String>),
}

#[uniffi::remote(Record)]
pub struct HazardRule {
    pub when: Trigger,
    pub category: Category,
    pub priority: Priority,
    pub title: String,
}

#[uniffi::remote(Record)]
pub struct Item {
    pub id: String,
    pub text: String,
    pub kind: ItemKind,
    pub required: bool,
    pub hazard: Option<HazardRule>,
}

#[uniffi::remote(Record)]
pub struct Template {
    pub id: String,
    pub version: u32,
    pub subject: Subject,
    pub title: String,
    pub items: Vec<Item>,
}

#[uniffi::remote(Enum)]
pub enum Answer {
    YesNo(bool),
    Number(f64),
    Choice(String),
    Text(String),
    Photos(Vec<String>),
}

// ---- Standard addresses (一标多实) ----

#[uniffi::remote(Record)]
pub struct AddressDetails {
    pub code: String,
    pub text: String,
    pub point: LatLon,
    pub grid_id: String,
}

#[uniffi::remote(Enum)]
pub enum HouseUse {
    Residential,
    Commercial,
    Mixed,
    Industrial,
    Other,
}

#[uniffi::remote(Enum)]
pub enum Tenure {
    OwnerOccupied,
    Rented,
    GroupRental,
    Vacant,
}

#[uniffi::remote(Record)]
pub struct House {
    pub label: String,
    pub usage: HouseUse,
    pub area_m2: f64,
    pub tenure: Tenure,
}

#[uniffi::remote(Enum)]
pub enum Residency {
    RegisteredResident,
    RegisteredAbsent,
    NonRegistered,
}

#[uniffi::remote(Record)]
pub struct Person {
    pub name: String,
    pub id_number: String,
    pub phone: Option<String>,
    pub residency: Residency,
    pub house_id: Option<String>,
    pub moved_in: Option<String>,
}

#[uniffi::remote(Enum)]
pub enum EnterpriseKind {
    Business,
    Management,
    Service,
    Industrial,
}

#[uniffi::remote(Record)]
pub struct Enterprise {
    pub name: String,
    pub credit_code: String,
    pub kind: EnterpriseKind,
    pub contact: String,
    pub phone: Option<String>,
    pub responsibilities: Vec<String>,
}

#[uniffi::remote(Record)]
pub struct PersonPatch {
    pub name: Option<String>,
    pub id_number: Option<String>,
    pub phone: Option<String>,
    pub residency: Option<Residency>,
    pub house_id: Option<String>,
}

#[uniffi::remote(Record)]
pub struct HousePatch {
    pub usage: Option<HouseUse>,
    pub area_m2: Option<f64>,
    pub tenure: Option<Tenure>,
}

#[uniffi::remote(Record)]
pub struct EnterprisePatch {
    pub name: Option<String>,
    pub contact: Option<String>,
    pub phone: Option<String>,
    pub responsibilities: Option<Vec<String>>,
}

/// One correction made at the door; `FieldApp::change_address` takes several at once.
#[uniffi::remote(Enum)]
pub enum AddressChange {
    AddressCorrected {
        text: Option<String>,
        point: Option<LatLon>,
    },
    HouseAdded {
        house_id: String,
        house: House,
    },
    HouseCorrected {
        house_id: String,
        patch: HousePatch,
    },
    PersonAdded {
        person_id: String,
        person: Person,
    },
    PersonCorrected {
        person_id: String,
        patch: PersonPatch,
    },
    PersonMovedOut {
        person_id: String,
        on: String,
        to: Option<String>,
    },
    EnterpriseAdded {
        enterprise_id: String,
        enterprise: Enterprise,
    },
    EnterpriseCorrected {
        enterprise_id: String,
        patch: EnterprisePatch,
    },
    EnterpriseClosed {
        enterprise_id: String,
        on: String,
    },
}

#[uniffi::remote(Record)]
pub struct Unapplied {
    pub entry_id: String,
    pub reason: String,
}

// ---- Mediation (人民调解) ----

#[uniffi::remote(Enum)]
pub enum DisputeType {
    Neighbour,
    Family,
    Property,
    Labour,
    Land,
    Consumer,
    Other,
}

#[uniffi::remote(Enum)]
pub enum Side {
    Applicant,
    Respondent,
    Third,
}

#[uniffi::remote(Record)]
pub struct Party {
    pub name: String,
    pub side: Side,
    pub id_number: Option<String>,
    pub phone: Option<String>,
}

#[uniffi::remote(Record)]
pub struct Team {
    pub inspector: String,
    pub mediator: String,
    pub legal_adviser: Option<String>,
    pub judge: Option<String>,
}

#[uniffi::remote(Enum)]
pub enum Rung {
    Grid,
    Village,
    Town,
}

#[uniffi::remote(Record)]
pub struct MediationDetails {
    pub file_id: String,
    pub grid_id: String,
    pub dispute_type: DisputeType,
    pub summary: String,
    pub parties: Vec<Party>,
    pub team: Team,
    pub opened_at: Rung,
    pub case_id: Option<String>,
}

/// One step of a mediation; `FieldApp::record_mediation` checks it against the file.
#[uniffi::remote(Enum)]
pub enum MediationStep {
    Session {
        at_ms: i64,
        place: String,
        attendees: Vec<String>,
        notes: String,
    },
    Escalated {
        to: Rung,
        reason: String,
    },
    Agreed {
        text: String,
        signatures: Vec<String>,
        at_ms: i64,
    },
    Refused {
        reason: String,
    },
    Withdrawn {
        reason: String,
    },
    ConfirmationRequested {
        court: String,
        at_ms: i64,
    },
    ConfirmationDecided {
        granted: bool,
    },
}

#[uniffi::remote(Enum)]
pub enum Outcome {
    Agreed,
    Refused,
    Withdrawn,
}

#[uniffi::remote(Enum)]
pub enum Confirmation {
    NotRequested { deadline_ms: i64 },
    Requested,
    Granted,
    Denied,
}
