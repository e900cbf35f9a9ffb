//! The citizen's client: anonymous registration, then [`Store::sync_citizen`] — submit the
//! reports written offline, upload their photos, and refresh "my reports".

use super::client::{SyncOptions, Transport, into_error};
use super::upload::{PhotoQueueObserver, UploadOptions, UploadReport};
use super::wire::{
    self, CitizenReceipt, CitizenRegisterRequest, EnrollResponse, MyReports, PROTOCOL_VERSION,
};
use crate::case::Role;
use crate::error::{Error, Result};
use crate::store::Store;

/// What one [`Store::sync_citizen`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CitizenSyncReport {
    /// Reports the server accepted in this sync (including repeats of earlier submissions).
    pub submitted: u32,
    /// Reports the server refused (the reason is kept on the report).
    pub refused: u32,
    /// The photo upload.
    pub photos: UploadReport,
    /// Reports in the refreshed list.
    pub listed: u32,
}

/// Registers this phone anonymously as a citizen. The caller opens the store for the
/// returned user (role citizen) and calls [`Store::set_enrollment`].
pub fn register_citizen(
    transport: &dyn Transport,
    device_id: &str,
    device_name: &str,
    name: Option<&str>,
    phone: Option<&str>,
) -> Result<EnrollResponse> {
    let request = CitizenRegisterRequest {
        protocol: PROTOCOL_VERSION,
        device_id: device_id.to_owned(),
        device_name: device_name.to_owned(),
        name: name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()),
        phone: phone.map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()),
    };
    let body = transport
        .post("/v1/citizen/register", &wire::encode(&request))
        .map_err(into_error)?;
    let response: EnrollResponse = wire::decode(&body, 64 << 10)?;
    wire::check_protocol(response.protocol)?;
    if response.role != Role::Citizen {
        return Err(Error::Config(
            "服务器返回的不是市民身份 / the server did not register a citizen".into(),
        ));
    }
    Ok(response)
}

impl Store {
    /// Submits the pending reports (each idempotent by its id), uploads their photos (the
    /// report first, then its photos), and refreshes the list of the citizen's reports with
    /// status and closing note. Each request is retried with back-off; what succeeded stays
    /// recorded if a later step fails.
    pub fn sync_citizen(
        &self,
        transport: &dyn Transport,
        options: &SyncOptions,
        upload: &UploadOptions,
        observer: &dyn PhotoQueueObserver,
    ) -> Result<CitizenSyncReport> {
        if self.config().role != Role::Citizen {
            return Err(Error::Config(
                "只有市民账号提交随手拍 / only citizen accounts submit reports".into(),
            ));
        }
        if self.credentials()?.is_none() {
            return Err(Error::Config(
                "尚未注册，请先联网注册 / not registered yet: register online first".into(),
            ));
        }
        let mut report = CitizenSyncReport::default();
        for pending in self.pending_citizen_reports()? {
            let body = wire::encode(&pending);
            match with_retries(options, || transport.post("/v1/citizen/reports", &body)) {
                Ok(bytes) => {
                    let receipt: CitizenReceipt = wire::decode(&bytes, 64 << 10)?;
                    self.citizen_report_answered(&pending.id, Ok(&receipt.grid_id))?;
                    report.submitted += 1;
                }
                Err(Error::Server {
                    status: 400 | 403 | 409 | 422,
                    message,
                    ..
                }) => {
                    self.citizen_report_answered(&pending.id, Err(&message))?;
                    report.refused += 1;
                }
                Err(e) => return Err(e),
            }
        }
        report.photos = self.upload_photos(transport, upload, observer)?;
        let bytes = with_retries(options, || transport.get("/v1/citizen/reports"))?;
        let mine: MyReports = wire::decode(&bytes, wire::MAX_MESSAGE_BYTES)?;
        self.apply_my_reports(&mine)?;
        report.listed = u32::try_from(mine.reports.len()).unwrap_or(u32::MAX);
        Ok(report)
    }
}

fn with_retries(
    options: &SyncOptions,
    mut send: impl FnMut() -> std::result::Result<Vec<u8>, super::client::TransportError>,
) -> Result<Vec<u8>> {
    let mut last = None;
    for attempt in 1..=options.backoff.attempts.max(1) {
        if attempt > 1 {
            std::thread::sleep(options.backoff.delay(attempt - 1));
        }
        match send() {
            Ok(bytes) => return Ok(bytes),
            Err(e) if e.is_transient() => last = Some(e),
            Err(e) => return Err(into_error(e)),
        }
    }
    // The last answer: unreachable, or what the server said (a full disk: 507).
    Err(last.map_or(Error::Network(String::new()), into_error))
}
