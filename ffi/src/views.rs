//! What the screens show and what they send, where the core's own type does not cross the
//! boundary as it is (ordered maps become lists; a case is flattened for its screen).

use gridlink_core::address::{Address, EnterpriseState, PersonState, Unapplied};
use gridlink_core::case::{
    Case, Category, Event, EventKind, FlagReason, Level, Location, Priority, Role, Status,
};
use gridlink_core::checklist::{Answer, CheckIn, Template, Visit};
use gridlink_core::geo::LatLon;
use gridlink_core::mediation::{
    Confirmation, MediationDetails, MediationFile, MediationState, MediationStep, Outcome, Rung,
};
use gridlink_core::store::{
    AddressHit, CaseSummary, CitizenReportState, CitizenReportView, MediationSummary, PatrolItem,
    PhotoState, PhotoStatus,
};

#[uniffi::remote(Record)]
pub struct AddressHit {
    pub code: String,
    pub text: String,
    pub grid_id: String,
    pub point: LatLon,
    pub distance_m: Option<f64>,
    pub residents: Vec<String>,
    pub enterprises: Vec<String>,
}

#[uniffi::remote(Record)]
pub struct PatrolItem {
    pub code: String,
    pub text: String,
    pub last_visit_ms: Option<i64>,
    pub due: bool,
}

#[uniffi::remote(Record)]
pub struct PersonState {
    pub person_id: String,
    pub person: gridlink_core::address::Person,
    pub moved_out: Option<String>,
}

#[uniffi::remote(Record)]
pub struct EnterpriseState {
    pub enterprise_id: String,
    pub enterprise: gridlink_core::address::Enterprise,
    pub closed: Option<String>,
}

#[uniffi::remote(Record)]
pub struct CheckIn {
    pub distance_m: f64,
    pub off_site: bool,
}

#[uniffi::remote(Record)]
pub struct MediationSummary {
    pub file_id: String,
    pub grid_id: String,
    pub title: String,
    pub ended: bool,
    pub updated_at_ms: i64,
}

#[uniffi::remote(Record)]
pub struct MediationState {
    pub rung: Rung,
    pub sessions: u32,
    pub outcome: Option<Outcome>,
    pub agreed_at_ms: Option<i64>,
    pub confirmation: Option<Confirmation>,
}

#[uniffi::remote(Enum)]
pub enum CitizenReportState {
    Pending,
    Submitted,
    Refused,
}

#[uniffi::remote(Record)]
pub struct CitizenReportView {
    pub id: String,
    pub category: Category,
    pub text: String,
    pub location: Location,
    pub photos: Vec<String>,
    pub created_at_ms: i64,
    pub state: CitizenReportState,
    pub error: Option<String>,
    pub grid_id: Option<String>,
    pub status: Option<String>,
    pub status_label: Option<String>,
    pub closing_note: Option<String>,
}

#[uniffi::remote(Enum)]
pub enum PhotoState {
    Processed,
    Uploading,
    Uploaded,
    Failed,
    Quarantined,
}

/// Who is signed in on this phone (`gridlink_core::session::SignedInUser`, with the role's
/// label for display).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Session {
    /// The user.
    pub user_id: String,
    /// The user's name, as the server has it.
    pub user_name: String,
    /// The role.
    pub role: Role,
    /// The role for display (网格长 …).
    pub role_label: String,
    /// This device.
    pub device_id: String,
    /// The grids, villages, towns and departments the user works in (`grid:…`, `town:…`).
    pub scopes: Vec<String>,
}

impl From<gridlink_core::session::SignedInUser> for Session {
    fn from(u: gridlink_core::session::SignedInUser) -> Self {
        Session {
            role_label: u.role.label_zh().to_owned(),
            user_id: u.user_id,
            user_name: u.user_name,
            role: u.role,
            device_id: u.device_id,
            scopes: u.scopes,
        }
    }
}

/// A case the user reports (inspectors and chiefs; citizens use `submit_citizen_report`).
#[derive(Debug, Clone, uniffi::Record)]
pub struct NewCaseInput {
    /// A fresh id from `new_id()`, kept by the screen so a retried tap is the same case.
    pub id: String,
    /// What it is about.
    pub category: Category,
    /// One line.
    pub title: String,
    /// Free text.
    #[uniffi(default = "")]
    pub description: String,
    /// Where the problem is.
    pub location: Option<Location>,
    /// Standard address code.
    #[uniffi(default = None)]
    pub address_id: Option<String>,
    /// The grid; the signed-in user's first grid when absent.
    #[uniffi(default = None)]
    pub grid_id: Option<String>,
    /// Photos captured for this case id before reporting.
    #[uniffi(default = [])]
    pub photos: Vec<String>,
    /// How urgent (normal when absent).
    #[uniffi(default = None)]
    pub priority: Option<Priority>,
}

/// One event of a case's timeline.
#[derive(Debug, Clone, uniffi::Record)]
pub struct EventView {
    /// Event id.
    pub id: String,
    /// What happened.
    pub kind: EventKind,
    /// Who.
    pub actor: String,
    /// In which role.
    pub role: Role,
    /// On which device.
    pub device: String,
    /// When (device clock, UTC ms).
    pub at_ms: i64,
    /// Where.
    pub location: Option<Location>,
    /// Kept but not applied, and why (a concurrent step that no longer fitted).
    pub flagged: Option<FlagReason>,
}

/// A case as its screen shows it.
#[derive(Debug, Clone, uniffi::Record)]
pub struct CaseView {
    /// Case id.
    pub id: String,
    /// Category.
    pub category: Category,
    /// Category for display.
    pub category_label: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Where.
    pub location: Option<Location>,
    /// Standard address code.
    pub address_id: Option<String>,
    /// Grid.
    pub grid_id: String,
    /// Priority.
    pub priority: Priority,
    /// Status.
    pub status: Status,
    /// Status for display (待受理 …).
    pub status_label: String,
    /// The level that holds it.
    pub level: Level,
    /// Who handles it.
    pub assignee: Option<String>,
    /// Deadline, UTC ms.
    pub due_at_ms: Option<i64>,
    /// The level that solved it.
    pub solved_level: Option<Level>,
    /// Reporter (masked by the server where the role need not know).
    pub reporter: Option<String>,
    /// Every photo (report and later).
    pub photos: Vec<String>,
    /// Times it reopened.
    pub reopened: u32,
    /// The timeline.
    pub events: Vec<EventView>,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        EventView {
            id: e.id,
            kind: e.kind,
            actor: e.actor,
            role: e.role,
            device: e.device,
            at_ms: e.at_ms,
            location: e.location,
            flagged: None,
        }
    }
}

impl From<Case> for CaseView {
    fn from(case: Case) -> Self {
        let flags = &case.state.flagged;
        let events = case
            .history
            .into_iter()
            .map(|e| EventView {
                flagged: flags
                    .iter()
                    .find(|f| f.event_id == e.id)
                    .map(|f| f.reason.clone()),
                ..EventView::from(e)
            })
            .collect();
        let d = case.details;
        let s = case.state;
        CaseView {
            id: d.id,
            category: d.category,
            category_label: d.category.label_zh().to_owned(),
            title: d.title,
            description: d.description,
            location: d.location,
            address_id: d.address_id,
            grid_id: d.grid_id,
            priority: d.priority,
            status: s.status,
            status_label: s.status.label_zh().to_owned(),
            level: s.level,
            assignee: s.assignee,
            due_at_ms: s.due_at_ms,
            solved_level: s.solved_level,
            reporter: s.reporter.or(d.reporter),
            photos: s.photos,
            reopened: s.reopened,
            events,
        }
    }
}

/// A row of a case list.
#[derive(Debug, Clone, uniffi::Record)]
pub struct CaseListItem {
    /// Case id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Category.
    pub category: Category,
    /// Status.
    pub status: Status,
    /// Status for display.
    pub status_label: String,
    /// Level.
    pub level: Level,
    /// Grid.
    pub grid_id: String,
    /// Handler.
    pub assignee: Option<String>,
    /// Reported, UTC ms.
    pub created_at_ms: i64,
    /// Last change, UTC ms.
    pub updated_at_ms: i64,
    /// Deadline, UTC ms.
    pub due_at_ms: Option<i64>,
    /// Events kept but not applied.
    pub flagged: u32,
}

impl From<CaseSummary> for CaseListItem {
    fn from(s: CaseSummary) -> Self {
        CaseListItem {
            id: s.id,
            title: s.title,
            category: s.category,
            status: s.status,
            status_label: s.status.label_zh().to_owned(),
            level: s.level,
            grid_id: s.grid_id,
            assignee: s.assignee,
            created_at_ms: s.created_at_ms,
            updated_at_ms: s.updated_at_ms,
            due_at_ms: s.due_at_ms,
            flagged: s.flagged,
        }
    }
}

/// Which cases a list shows.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct CaseListQuery {
    /// Only these statuses (none: all).
    #[uniffi(default = [])]
    pub statuses: Vec<Status>,
    /// Only open cases.
    #[uniffi(default = false)]
    pub open_only: bool,
    /// Only these grids (none: all on the phone).
    #[uniffi(default = [])]
    pub grid_ids: Vec<String>,
    /// Only this category.
    #[uniffi(default = None)]
    pub category: Option<Category>,
    /// Only cases assigned to the user.
    #[uniffi(default = false)]
    pub assigned_to_me: bool,
    /// Only cases the user reported.
    #[uniffi(default = false)]
    pub reported_by_me: bool,
    /// Words to search in titles, descriptions and addresses (Chinese works).
    #[uniffi(default = None)]
    pub text: Option<String>,
    /// Page size (at most 500).
    #[uniffi(default = 50)]
    pub limit: u32,
    /// The `next` of the previous page.
    #[uniffi(default = None)]
    pub after: Option<String>,
}

/// One page of a case list.
#[derive(Debug, Clone, uniffi::Record)]
pub struct CaseListPage {
    /// The rows.
    pub items: Vec<CaseListItem>,
    /// Pass as `after` for the next page; none at the end.
    pub next: Option<String>,
}

/// A photo in the queue, as the queue screen shows it.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PhotoView {
    /// SHA-256 of the processed JPEG.
    pub hash: String,
    /// The case, visit or mediation file it belongs to.
    pub owner_id: String,
    /// Where it stands.
    pub state: PhotoState,
    /// The state for display (待上传, 上传中 …).
    pub state_label: String,
    /// Size of the processed photo.
    pub size: u64,
    /// Bytes the server has confirmed.
    pub confirmed_bytes: u64,
    /// The thumbnail is on the server.
    pub thumbnail_sent: bool,
    /// Failed attempts so far.
    pub attempts: u32,
    /// The last failure.
    pub last_error: Option<String>,
    /// Next automatic attempt, UTC ms.
    pub next_attempt_at_ms: i64,
    /// Taken, UTC ms.
    pub taken_at_ms: i64,
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
    /// The full-size copy is still on the phone.
    pub local: bool,
    /// When it entered the queue, UTC ms.
    pub captured_at_ms: i64,
    /// Its report was never saved and the grace period has passed: not unsent work, never
    /// uploaded, discardable (`discard_photo`).
    pub orphaned: bool,
}

impl From<PhotoStatus> for PhotoView {
    fn from(p: PhotoStatus) -> Self {
        PhotoView {
            state_label: p.state.label_zh().to_owned(),
            hash: p.hash,
            owner_id: p.case_id,
            state: p.state,
            size: p.size,
            confirmed_bytes: p.confirmed_bytes,
            thumbnail_sent: p.thumbnail_sent,
            attempts: p.attempts,
            last_error: p.last_error,
            next_attempt_at_ms: p.next_attempt_at_ms,
            taken_at_ms: p.taken_at_ms,
            width: p.width,
            height: p.height,
            local: p.local,
            captured_at_ms: p.captured_at_ms,
            orphaned: p.orphaned,
        }
    }
}

/// A house at an address, with its id.
#[derive(Debug, Clone, uniffi::Record)]
pub struct HouseEntry {
    /// House id.
    pub house_id: String,
    /// The house.
    pub house: gridlink_core::address::House,
}

/// A standard address with everything attached to it (personal data masked unless the role
/// sees it).
#[derive(Debug, Clone, uniffi::Record)]
pub struct AddressView {
    /// Code, text, point, grid.
    pub details: gridlink_core::address::AddressDetails,
    /// Houses.
    pub houses: Vec<HouseEntry>,
    /// People, moved-out ones included (with the date).
    pub people: Vec<PersonState>,
    /// Enterprises, closed ones included.
    pub enterprises: Vec<EnterpriseState>,
    /// Concurrent corrections that could not apply.
    pub unapplied: Vec<Unapplied>,
    /// Last change, UTC ms.
    pub updated_at_ms: i64,
}

impl From<Address> for AddressView {
    fn from(a: Address) -> Self {
        AddressView {
            details: a.details,
            houses: a
                .houses
                .into_iter()
                .map(|(house_id, house)| HouseEntry { house_id, house })
                .collect(),
            people: a.people.into_values().collect(),
            enterprises: a.enterprises.into_values().collect(),
            unapplied: a.unapplied,
            updated_at_ms: a.updated_at_ms,
        }
    }
}

/// An answered checklist item.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ItemAnswer {
    /// The item.
    pub item_id: String,
    /// The answer.
    pub answer: Answer,
}

/// A case a hazard answer opened.
#[derive(Debug, Clone, uniffi::Record)]
pub struct HazardCase {
    /// The item whose answer fired the rule.
    pub item_id: String,
    /// The case.
    pub case_id: String,
}

/// A patrol visit.
#[derive(Debug, Clone, uniffi::Record)]
pub struct VisitView {
    /// Visit id.
    pub visit_id: String,
    /// Inspector.
    pub inspector: String,
    /// Address.
    pub address_code: String,
    /// Grid.
    pub grid_id: String,
    /// The template version the visit uses to the end.
    pub template: Template,
    /// Distance and off-site flag.
    pub check_in: Option<CheckIn>,
    /// Checked in, UTC ms.
    pub checked_in_at_ms: Option<i64>,
    /// Answers so far.
    pub answers: Vec<ItemAnswer>,
    /// Findings.
    pub findings: Vec<String>,
    /// Cases opened by hazard answers.
    pub hazard_cases: Vec<HazardCase>,
    /// Checked out, UTC ms.
    pub checked_out_at_ms: Option<i64>,
    /// Concurrent steps that could not apply.
    pub unapplied: Vec<Unapplied>,
}

impl From<Visit> for VisitView {
    fn from(v: Visit) -> Self {
        VisitView {
            visit_id: v.details.visit_id,
            inspector: v.details.inspector,
            address_code: v.details.address_code,
            grid_id: v.details.grid_id,
            template: v.details.template,
            check_in: v.check_in,
            checked_in_at_ms: v.checked_in_at_ms,
            answers: v
                .answers
                .into_iter()
                .map(|(item_id, answer)| ItemAnswer { item_id, answer })
                .collect(),
            findings: v.findings,
            hazard_cases: v
                .hazard_cases
                .into_iter()
                .map(|(item_id, case_id)| HazardCase { item_id, case_id })
                .collect(),
            checked_out_at_ms: v.checked_out_at_ms,
            unapplied: v.unapplied,
        }
    }
}

/// What answering an item did.
#[derive(Debug, Clone, uniffi::Record)]
pub struct AnswerOutcome {
    /// The visit after the answer.
    pub visit: VisitView,
    /// The case the answer opened, if it fired a hazard rule.
    pub hazard_case: Option<CaseView>,
}

/// A recorded mediation step.
#[derive(Debug, Clone, uniffi::Record)]
pub struct MediationEntry {
    /// Entry id.
    pub id: String,
    /// When (device clock, UTC ms).
    pub at_ms: i64,
    /// Who.
    pub actor: String,
    /// In which role.
    pub role: Role,
    /// The step.
    pub step: MediationStep,
}

/// A mediation file (parties masked unless the role sees personal data).
#[derive(Debug, Clone, uniffi::Record)]
pub struct MediationFileView {
    /// Parties, team, dispute.
    pub details: MediationDetails,
    /// Rung, sessions, outcome, confirmation.
    pub state: MediationState,
    /// Every step.
    pub steps: Vec<MediationEntry>,
    /// Concurrent steps that could not apply.
    pub unapplied: Vec<Unapplied>,
    /// Last change, UTC ms.
    pub updated_at_ms: i64,
}

impl From<MediationFile> for MediationFileView {
    fn from(f: MediationFile) -> Self {
        MediationFileView {
            details: f.details,
            state: f.state,
            steps: f
                .steps
                .into_iter()
                .map(|e| MediationEntry {
                    id: e.id,
                    at_ms: e.at_ms,
                    actor: e.actor,
                    role: e.role,
                    step: e.body,
                })
                .collect(),
            unapplied: f.unapplied,
            updated_at_ms: f.updated_at_ms,
        }
    }
}

/// A grid found at a point.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct GridView {
    /// Grid id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Town.
    pub town_id: String,
    /// Village or community.
    pub village_id: String,
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, uniffi::Record)]
pub struct SyncSummary {
    /// Requests made.
    pub round_trips: u32,
    /// Documents pushed.
    pub docs_sent: u64,
    /// Documents received.
    pub docs_received: u64,
    /// Pushes the server accepted.
    pub docs_accepted: u64,
    /// Pushes the server refused (see the case's timeline and `rejected_edits`).
    pub docs_rejected: u64,
    /// Documents that left the phone (out of scope).
    pub docs_removed: u64,
    /// Pushes the server could not take for its own reasons (a full disk, its database
    /// unreachable): kept, sent again at the next sync; `rejected_items` says why.
    pub docs_deferred: u64,
    /// Retries after failures.
    pub retries: u32,
    /// Photos uploaded in full.
    pub photos_uploaded: u32,
    /// Photos waiting for their case to reach the server.
    pub photos_waiting: u32,
    /// Photos that failed this time (retried later).
    pub photos_failed: u32,
    /// Citizen reports the server accepted.
    pub reports_submitted: u32,
    /// Citizen reports the server refused.
    pub reports_refused: u32,
}

impl From<gridlink_core::session::SessionSync> for SyncSummary {
    fn from(s: gridlink_core::session::SessionSync) -> Self {
        use gridlink_core::session::SessionSync;
        match s {
            SessionSync::Citizen(r) => SyncSummary {
                reports_submitted: r.submitted,
                reports_refused: r.refused,
                photos_uploaded: r.photos.uploaded,
                photos_waiting: r.photos.waiting,
                photos_failed: r.photos.failed,
                retries: r.photos.retries,
                ..SyncSummary::default()
            },
            SessionSync::Staff { sync: p, photos: u } => SyncSummary {
                round_trips: p.round_trips,
                docs_sent: p.docs_sent,
                docs_received: p.docs_received,
                docs_accepted: p.docs_accepted,
                docs_rejected: p.docs_rejected,
                docs_removed: p.docs_removed,
                docs_deferred: p.docs_deferred,
                retries: p.retries + u.retries,
                photos_uploaded: u.uploaded,
                photos_waiting: u.waiting,
                photos_failed: u.failed,
                ..SyncSummary::default()
            },
        }
    }
}

/// Progress of a running sync.
#[derive(Debug, Clone, Default, PartialEq, uniffi::Record)]
pub struct SyncProgressView {
    /// Requests made.
    pub round_trips: u32,
    /// Documents pushed.
    pub docs_sent: u64,
    /// Documents received.
    pub docs_received: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
}

/// A document the server refused or could not take, for the "needs attention" screen.
#[derive(Debug, Clone, uniffi::Record)]
pub struct RejectedItem {
    /// The case or record.
    pub doc_id: String,
    /// Machine code (`server_error`: the server's own trouble, nothing was refused).
    pub code: String,
    /// For the user.
    pub message: String,
    /// Still waiting to be sent again (the server could not take it), rather than refused.
    pub will_retry: bool,
}

/// One edit the server refused: what the user did, and why it did not count.
#[derive(Debug, Clone, uniffi::Record)]
pub struct RejectedEditView {
    /// The case or record.
    pub doc_id: String,
    /// The refused case event (none for a record entry).
    pub event: Option<EventView>,
    /// The refused record entry as JSON (an address change, a visit answer, a mediation
    /// step), or the reported facts of a refused report.
    pub entry_json: Option<String>,
    /// What it was, for a list: "评论 / comment", "上报 …".
    pub summary: String,
    /// Machine code of the reason.
    pub code: String,
    /// The reason, for the user.
    pub message: String,
    /// When the refusal arrived, UTC ms.
    pub at_ms: i64,
}

impl From<gridlink_core::session::RefusedDocument> for RejectedItem {
    fn from(d: gridlink_core::session::RefusedDocument) -> Self {
        RejectedItem {
            doc_id: d.doc_id,
            code: d.code,
            message: d.message,
            will_retry: d.will_retry,
        }
    }
}

impl From<gridlink_core::session::RefusedEdit> for RejectedEditView {
    fn from(e: gridlink_core::session::RefusedEdit) -> Self {
        RejectedEditView {
            doc_id: e.doc_id,
            event: e.event.map(EventView::from),
            entry_json: e.entry_json,
            summary: e.summary,
            code: e.code,
            message: e.message,
            at_ms: e.at_ms,
        }
    }
}

/// The category list for pickers, with labels.
#[derive(Debug, Clone, uniffi::Record)]
pub struct CategoryOption {
    /// The category.
    pub category: Category,
    /// Its label (环境保护 …).
    pub label: String,
}
