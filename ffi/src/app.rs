//! `FieldApp`: the one object an app holds. It owns the phone's store for the signed-in user,
//! the HTTP transport, the grid map and the library's network thread.
//!
//! Database calls are blocking (the apps call them off the main thread). `start_sync` runs on
//! the library's own network thread and reports through a [`SyncObserver`]; `sync` is the same
//! work, blocking, for background jobs (WorkManager, BGTaskScheduler) that already run off the
//! main thread.

use crate::error::{ApiError, ApiResult};
use crate::observe::{PhotoAdapter, PhotoQueueObserver, SyncAdapter, SyncObserver};
use crate::views::{
    AddressView, AnswerOutcome, CaseListItem, CaseListPage, CaseListQuery, CaseView, GridView,
    MediationFileView, NewCaseInput, PhotoView, RejectedEditView, RejectedItem, Session,
    SyncSummary, VisitView,
};
use gridlink_core::address::{AddressChange, AddressDetails};
use gridlink_core::case::{Category, EventKind, Location};
use gridlink_core::checklist::{Answer, Template};
use gridlink_core::geo::LatLon;
use gridlink_core::mediation::{MediationDetails, MediationStep};
use gridlink_core::session::{self, CaseReport, PhoneSession, SessionConfig, SignedIn};
use gridlink_core::store::{
    AddressHit, CaseFilter, CaseQuery, CitizenReportView, DEFAULT_CHECK_IN_M, MediationSummary,
    Moment, NewCitizenReport, PageCursor, PatrolItem, PhotoInput, Store,
};
use gridlink_core::sync::wire::EnrollResponse;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// How the app opens the library.
#[derive(Debug, Clone, uniffi::Record)]
pub struct AppConfig {
    /// The SQLite file (in the app's private storage).
    pub database_path: String,
    /// Where the camera writes photos before they are processed (`new_photo_path`).
    pub photo_dir: String,
    /// The district server, e.g. `https://grid.wujiang.example.cn`.
    pub server_url: String,
    /// This installation's id, a UUID made once (`new_id()`) and kept by the app.
    pub device_id: String,
    /// A name for the device list on the server (e.g. the phone model).
    pub device_name: String,
    /// Attempts per request before a sync gives up for now (back-off with jitter between).
    #[uniffi(default = 8)]
    pub max_attempts: u32,
    /// Seconds after capture before a photo whose report was never saved stops counting as
    /// unsent work and is listed in `orphaned_photos` (the report screen may still be open).
    #[uniffi(default = 3600)]
    pub orphan_photo_grace_s: u32,
}

/// The library, as an app holds it: open once at start and keep. Everything it does is the
/// phone session's (`gridlink_core::session`) or the store's; this only converts types.
#[derive(uniffi::Object)]
pub struct FieldApp {
    session: PhoneSession,
    photo_observer: RwLock<Option<Arc<dyn PhotoQueueObserver>>>,
}

fn moment(location: Option<Location>) -> Moment {
    Moment {
        at_ms: gridlink_core::store::now_ms(),
        location,
    }
}

fn storage(message: String) -> ApiError {
    ApiError::Storage { detail: message }
}

/// How long sign-out waits for calls still holding the store.
const SIGN_OUT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl FieldApp {
    fn signed(&self) -> ApiResult<Arc<SignedIn>> {
        Ok(self.session.signed()?)
    }

    fn store(&self) -> ApiResult<Arc<Store>> {
        Ok(self.signed()?.store.clone())
    }

    fn run_sync(&self, observer: Option<Arc<dyn SyncObserver>>) -> ApiResult<SyncSummary> {
        let photos = PhotoAdapter(
            self.photo_observer
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        );
        Ok(self.session.sync(&SyncAdapter(observer), &photos)?.into())
    }
}

impl FieldApp {
    /// Signs in with an enrollment obtained elsewhere (Rust callers: tests and benchmarks
    /// that enroll without a server). The apps use `enroll` and `register_citizen`.
    pub fn adopt_enrollment(&self, enrollment: EnrollResponse) -> ApiResult<Session> {
        Ok(self.session.adopt_enrollment(enrollment)?.into())
    }
}

#[uniffi::export]
impl FieldApp {
    /// Opens the library: the signed-in user's store if there is one, and the grid map if
    /// one was loaded before.
    #[uniffi::constructor]
    pub fn open(config: AppConfig) -> ApiResult<Arc<FieldApp>> {
        let session = PhoneSession::open(SessionConfig {
            database_path: PathBuf::from(&config.database_path),
            photo_dir: PathBuf::from(&config.photo_dir),
            server_url: config.server_url,
            device_id: config.device_id,
            device_name: config.device_name,
            max_attempts: config.max_attempts,
            orphan_photo_grace_ms: i64::from(config.orphan_photo_grace_s) * 1000,
        })?;
        Ok(Arc::new(FieldApp {
            session,
            photo_observer: RwLock::new(None),
        }))
    }

    /// Who is signed in, if anyone.
    pub fn session(&self) -> Option<Session> {
        self.session.user().map(Into::into)
    }

    /// Signs in with a one-time enrollment code from the district (network).
    pub fn enroll(&self, code: String) -> ApiResult<Session> {
        Ok(self.session.enroll(&code)?.into())
    }

    /// Registers this phone anonymously as a citizen (随手拍), optionally with a name and
    /// phone for call-backs (network).
    pub fn register_citizen(
        &self,
        name: Option<String>,
        phone: Option<String>,
    ) -> ApiResult<Session> {
        Ok(self
            .session
            .register_citizen(name.as_deref(), phone.as_deref())?
            .into())
    }

    /// Signs out and removes the user's data from the phone. Refused while work has not
    /// reached the server (documents, photos, citizen reports), unless `discard_unsent`. Waits
    /// for a running sync to end; the next sign-in registers a fresh device id (the server
    /// ties a device to one user).
    pub fn sign_out(&self, discard_unsent: bool) -> ApiResult<()> {
        Ok(self.session.sign_out(discard_unsent, SIGN_OUT_WAIT)?)
    }

    // ---- Sync ----

    /// Syncs now, blocking: pushes the work done offline, pulls the user's scope, uploads
    /// photos (citizens: submits reports and refreshes "my reports").
    pub fn sync(&self, observer: Option<Arc<dyn SyncObserver>>) -> ApiResult<SyncSummary> {
        self.run_sync(observer)
    }

    /// Starts a sync on the library's network thread and returns at once; `observer` hears
    /// progress, retries and the end. Syncs started together run one after the other.
    pub fn start_sync(self: Arc<Self>, observer: Arc<dyn SyncObserver>) -> ApiResult<()> {
        let app = self.clone();
        Ok(self.session.in_background(Box::new(move || {
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                app.run_sync(Some(observer.clone()))
            }));
            match run {
                Ok(Ok(summary)) => observer.finished(summary),
                Ok(Err(e)) => observer.failed(e),
                Err(_) => observer.failed(storage(
                    "同步时发生内部错误，已保存的工作不受影响 / an internal error stopped the sync; saved work is unaffected".into(),
                )),
            }
        }))?)
    }

    /// Told of every photo queue change during syncs (none: stop telling).
    pub fn set_photo_observer(&self, observer: Option<Arc<dyn PhotoQueueObserver>>) {
        *self
            .photo_observer
            .write()
            .unwrap_or_else(|p| p.into_inner()) = observer;
    }

    /// Documents the server refused at the last syncs, or could not take and will be sent
    /// again, for the "needs attention" screen.
    pub fn rejected_items(&self) -> ApiResult<Vec<RejectedItem>> {
        Ok(self
            .session
            .refused_documents()?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Every edit the server refused, newest first: case events and record entries, each with
    /// what it was and why, so the user can see it and do it again if it still applies.
    pub fn rejected_edits(&self) -> ApiResult<Vec<RejectedEditView>> {
        Ok(self
            .session
            .refused_edits()?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Work not yet on the server: documents with unconfirmed changes, photos to upload,
    /// citizen reports to submit.
    pub fn unsent_count(&self) -> ApiResult<u32> {
        let store = self.store()?;
        Ok(u32::try_from(session::unsent(&store)?).unwrap_or(u32::MAX))
    }

    // ---- Cases ----

    /// Reports a case (inspectors, chiefs), offline.
    pub fn report_case(&self, input: NewCaseInput) -> ApiResult<CaseView> {
        let report = CaseReport {
            id: input.id,
            category: input.category,
            title: input.title,
            description: input.description,
            location: input.location,
            address_id: input.address_id,
            grid_id: input.grid_id,
            photos: input.photos,
            priority: input.priority.unwrap_or_default(),
        };
        Ok(self
            .session
            .report_case(report, moment(input.location))?
            .into())
    }

    /// A case with its whole timeline.
    pub fn case(&self, case_id: String) -> ApiResult<CaseView> {
        Ok(self.store()?.case(&case_id)?.into())
    }

    /// A page of the case list.
    pub fn list_cases(&self, query: CaseListQuery) -> ApiResult<CaseListPage> {
        let after = match query.after.as_deref() {
            None => None,
            Some(token) => Some(token.parse::<PageCursor>()?),
        };
        let page = self.store()?.list(&CaseQuery {
            filter: CaseFilter {
                statuses: query.statuses,
                open_only: query.open_only,
                grid_ids: query.grid_ids,
                category: query.category,
                assignee: None,
                assigned_to_me: query.assigned_to_me,
                reported_by_me: query.reported_by_me,
                due_before_ms: None,
                text: query.text,
            },
            limit: query.limit,
            after,
            ..CaseQuery::default()
        })?;
        Ok(CaseListPage {
            items: page.items.into_iter().map(CaseListItem::from).collect(),
            next: page.next.map(|c| c.to_string()),
        })
    }

    /// Records a step of the closed loop as the signed-in user: a chief accepts, resolves in
    /// the grid or escalates; a handler resolves; the reporter side verifies; anyone comments.
    /// Checked against the case and the role offline; the server checks it again.
    pub fn record(
        &self,
        case_id: String,
        kind: EventKind,
        location: Option<Location>,
    ) -> ApiResult<CaseView> {
        Ok(self
            .store()?
            .record(&case_id, kind, moment(location))?
            .into())
    }

    // ---- Photos ----

    /// A fresh path in the photo directory for the camera to write a photo to.
    pub fn new_photo_path(&self) -> String {
        self.session.new_photo_path().to_string_lossy().into_owned()
    }

    /// Captures a photo (JPEG or PNG bytes) for a case, citizen report, visit or mediation
    /// file: processed (oriented, resized, metadata removed) and queued for upload.
    /// `free_space_bytes` is what the OS reports free for the app.
    pub fn capture_photo(
        &self,
        owner_id: String,
        bytes: Vec<u8>,
        location: Option<Location>,
        free_space_bytes: Option<u64>,
    ) -> ApiResult<PhotoView> {
        Ok(self
            .store()?
            .capture_photo(
                &owner_id,
                PhotoInput::Bytes(&bytes),
                moment(location),
                free_space_bytes,
            )?
            .into())
    }

    /// Captures the photo the camera wrote to `path` (from `new_photo_path`); the file is
    /// deleted once the server has confirmed the processed photo.
    pub fn capture_photo_file(
        &self,
        owner_id: String,
        path: String,
        location: Option<Location>,
        free_space_bytes: Option<u64>,
    ) -> ApiResult<PhotoView> {
        Ok(self
            .session
            .capture_camera_file(
                &owner_id,
                Path::new(&path),
                moment(location),
                free_space_bytes,
            )?
            .into())
    }

    /// Every photo in the queue, newest first.
    pub fn photo_queue(&self) -> ApiResult<Vec<PhotoView>> {
        Ok(self
            .store()?
            .photo_queue()?
            .into_iter()
            .map(PhotoView::from)
            .collect())
    }

    /// The photos of one case, report, visit or mediation file.
    pub fn photos_of(&self, owner_id: String) -> ApiResult<Vec<PhotoView>> {
        Ok(self
            .store()?
            .photos_of_case(&owner_id)?
            .into_iter()
            .map(PhotoView::from)
            .collect())
    }

    /// A photo's JPEG bytes if they are on the phone (none: use `fetch_photo`).
    pub fn photo_bytes(&self, hash: String, thumbnail: bool) -> ApiResult<Option<Vec<u8>>> {
        Ok(self.store()?.photo_bytes(&hash, thumbnail)?)
    }

    /// A photo's JPEG bytes, downloaded and checked if not on the phone (network).
    pub fn fetch_photo(&self, hash: String, thumbnail: bool) -> ApiResult<Vec<u8>> {
        let signed = self.signed()?;
        Ok(signed
            .store
            .fetch_photo(signed.transport.as_ref(), &hash, thumbnail)?)
    }

    /// Photos taken for a report that was never saved (the app was closed, or the report
    /// screen left), older than `orphan_photo_grace_s`: not unsent work, never uploaded; show
    /// them for the user to attach again (report with the same id) or discard.
    pub fn orphaned_photos(&self) -> ApiResult<Vec<PhotoView>> {
        Ok(self
            .store()?
            .orphaned_photos()?
            .into_iter()
            .map(PhotoView::from)
            .collect())
    }

    /// Deletes a photo that no saved case, record or report owns ("丢弃"); refused
    /// (`NotAllowed`) for a photo a saved case refers to.
    pub fn discard_photo(&self, hash: String) -> ApiResult<()> {
        Ok(self.store()?.discard_photo(&hash)?)
    }

    /// Makes every failed photo due now ("retry" button); returns how many.
    pub fn retry_photos_now(&self) -> ApiResult<u32> {
        let n = self.store()?.retry_all_photos_now()?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    // ---- Citizens (随手拍) ----

    /// Keeps a citizen's report for submission at the next sync (offline). Capture its
    /// photos first with the same `id`.
    pub fn submit_citizen_report(
        &self,
        id: String,
        category: Category,
        text: String,
        location: Location,
        photos: Vec<String>,
    ) -> ApiResult<CitizenReportView> {
        let report = NewCitizenReport {
            id,
            category,
            text,
            location,
            photos,
        };
        Ok(self
            .store()?
            .submit_citizen_report(report, moment(Some(location)))?)
    }

    /// The citizen's reports with their status and closing note.
    pub fn my_reports(&self) -> ApiResult<Vec<CitizenReportView>> {
        Ok(self.store()?.citizen_reports()?)
    }

    // ---- Patrol ----

    /// Today's patrol list of a grid (the user's first grid when absent): every address with
    /// its last visit, those not visited in `days` days first.
    pub fn patrol_list(&self, grid_id: Option<String>, days: u32) -> ApiResult<Vec<PatrolItem>> {
        Ok(self.session.patrol_list(grid_id.as_deref(), days)?)
    }

    /// The checklist templates (current versions).
    pub fn templates(&self) -> ApiResult<Vec<Template>> {
        Ok(self.store()?.templates()?)
    }

    /// Checks in at an address with a checklist. Without a location the check-in is
    /// refused; farther than `max_distance_m` (default 200 m) it is kept and flagged off-site.
    pub fn start_visit(
        &self,
        visit_id: String,
        address_code: String,
        template_id: String,
        location: Option<Location>,
        max_distance_m: Option<f64>,
    ) -> ApiResult<VisitView> {
        Ok(self
            .store()?
            .start_visit(
                &visit_id,
                &address_code,
                &template_id,
                moment(location),
                max_distance_m.unwrap_or(DEFAULT_CHECK_IN_M),
            )?
            .into())
    }

    /// A visit as it stands.
    pub fn visit(&self, visit_id: String) -> ApiResult<VisitView> {
        Ok(self.store()?.visit(&visit_id)?.into())
    }

    /// Answers a checklist item; a hazard answer opens a case at once.
    pub fn answer_visit(
        &self,
        visit_id: String,
        item_id: String,
        answer: Answer,
        location: Option<Location>,
    ) -> ApiResult<AnswerOutcome> {
        let outcome = self
            .store()?
            .answer_visit(&visit_id, &item_id, answer, moment(location))?;
        Ok(AnswerOutcome {
            visit: outcome.visit.into(),
            hazard_case: outcome.hazard_case.map(CaseView::from),
        })
    }

    /// Notes something outside the checklist, with photos captured for the visit.
    pub fn add_finding(
        &self,
        visit_id: String,
        text: String,
        photos: Vec<String>,
        location: Option<Location>,
    ) -> ApiResult<VisitView> {
        Ok(self
            .store()?
            .add_finding(&visit_id, &text, photos, moment(location))?
            .into())
    }

    /// Checks out; refused while required items are unanswered.
    pub fn finish_visit(
        &self,
        visit_id: String,
        location: Option<Location>,
    ) -> ApiResult<VisitView> {
        Ok(self
            .store()?
            .finish_visit(&visit_id, moment(location))?
            .into())
    }

    // ---- Base data (一标多实) ----

    /// An address with its houses, people and enterprises (masked by role).
    pub fn address(&self, code: String) -> ApiResult<AddressView> {
        Ok(self.store()?.address(&code)?.into())
    }

    /// Registers a new standard address at the door (grid chiefs and inspectors).
    pub fn register_address(
        &self,
        details: AddressDetails,
        location: Option<Location>,
    ) -> ApiResult<AddressView> {
        Ok(self
            .store()?
            .register_address(details, moment(location))?
            .into())
    }

    /// Adds and corrects people, houses and enterprises; all changes land or none.
    pub fn change_address(
        &self,
        code: String,
        changes: Vec<AddressChange>,
        location: Option<Location>,
    ) -> ApiResult<AddressView> {
        Ok(self
            .store()?
            .change_address(&code, changes, moment(location))?
            .into())
    }

    /// Addresses by address text, resident name or enterprise name.
    pub fn search_addresses(&self, text: String, limit: u32) -> ApiResult<Vec<AddressHit>> {
        Ok(self.store()?.search_addresses(&text, limit)?)
    }

    /// Addresses within `radius_m` of a point, nearest first.
    pub fn addresses_near(
        &self,
        point: LatLon,
        radius_m: f64,
        limit: u32,
    ) -> ApiResult<Vec<AddressHit>> {
        Ok(self.store()?.addresses_near(point, radius_m, limit)?)
    }

    // ---- Mediation (人民调解) ----

    /// Opens a mediation file, offline.
    pub fn open_mediation(
        &self,
        details: MediationDetails,
        location: Option<Location>,
    ) -> ApiResult<MediationFileView> {
        Ok(self
            .store()?
            .open_mediation(details, moment(location))?
            .into())
    }

    /// Records a session, escalation, agreement, refusal, withdrawal or judicial
    /// confirmation step.
    pub fn record_mediation(
        &self,
        file_id: String,
        step: MediationStep,
        location: Option<Location>,
    ) -> ApiResult<MediationFileView> {
        Ok(self
            .store()?
            .record_mediation(&file_id, step, moment(location))?
            .into())
    }

    /// A mediation file with every step.
    pub fn mediation_file(&self, file_id: String) -> ApiResult<MediationFileView> {
        Ok(self.store()?.mediation_file(&file_id)?.into())
    }

    /// The mediation files on the phone, latest first.
    pub fn mediation_files(&self) -> ApiResult<Vec<MediationSummary>> {
        Ok(self.store()?.mediation_files()?)
    }

    // ---- Map ----

    /// Loads the district's grid map (GeoJSON of grid polygons, WGS-84) and keeps it for the
    /// next start.
    pub fn load_grids(&self, geojson: String) -> ApiResult<u32> {
        let n = self.session.load_grids(&geojson)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Downloads the district's grid map from the server and keeps it (network).
    pub fn refresh_grids(&self) -> ApiResult<u32> {
        let n = self.session.refresh_grids()?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// The grid at a WGS-84 point, if the map is loaded and the point is in the district.
    pub fn grid_at(&self, point: LatLon) -> Option<GridView> {
        let grids = self.session.grids()?;
        grids.grid_at(point).map(|g| GridView {
            id: g.id.clone(),
            name: g.name.clone(),
            town_id: g.town_id.clone(),
            village_id: g.village_id.clone(),
        })
    }
}
