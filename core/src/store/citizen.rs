//! A citizen's 随手拍 reports on the phone: written offline, submitted when the network allows
//! (idempotent by id), then kept with the status and closing note the server reports.
//!
//! Citizens hold no case documents: a report is a plain submission the server validates and
//! turns into a case, and what comes back is the citizen's own list, nothing of anyone else.

// The upload/submission half is called by the sync client (feature `client`).
#![cfg_attr(not(feature = "client"), allow(dead_code))]
use super::{Moment, Store, now_ms};
use crate::case::{Category, EventError, Location};
use crate::error::{Error, Result};
use crate::sync::wire::{CitizenReport, MyReports, PROTOCOL_VERSION};
use rusqlite::{OptionalExtension, params};

pub use crate::sync::wire::{MAX_REPORT_CHARS, MAX_REPORT_PHOTOS};

/// What a citizen enters: category, one line, where, and 1–9 photos already captured for this
/// report (see [`Store::capture_photo`] with the report id).
#[derive(Debug, Clone, PartialEq)]
pub struct NewCitizenReport {
    /// Report id chosen by the app (a UUID); retrying a submission never makes two cases.
    pub id: String,
    /// Category.
    pub category: Category,
    /// One line.
    pub text: String,
    /// Where the problem is.
    pub location: Location,
    /// Photo hashes.
    pub photos: Vec<String>,
}

/// Where a report stands on the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CitizenReportState {
    /// Written, not yet accepted by the server.
    Pending,
    /// The server accepted it (a case exists).
    Submitted,
    /// The server refused it (e.g. outside the district); `error` says why.
    Refused,
}

impl CitizenReportState {
    /// Stable machine code.
    pub fn code(self) -> &'static str {
        match self {
            CitizenReportState::Pending => "pending",
            CitizenReportState::Submitted => "submitted",
            CitizenReportState::Refused => "refused",
        }
    }

    fn from_code(code: &str) -> CitizenReportState {
        match code {
            "submitted" => CitizenReportState::Submitted,
            "refused" => CitizenReportState::Refused,
            _ => CitizenReportState::Pending,
        }
    }
}

/// A report as the citizen's "我的上报" screen shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct CitizenReportView {
    /// Id.
    pub id: String,
    /// Category.
    pub category: Category,
    /// The line written.
    pub text: String,
    /// Where.
    pub location: Location,
    /// Photo hashes.
    pub photos: Vec<String>,
    /// When written (device clock), UTC ms.
    pub created_at_ms: i64,
    /// On the phone.
    pub state: CitizenReportState,
    /// Why the server refused it.
    pub error: Option<String>,
    /// The grid the server placed it in.
    pub grid_id: Option<String>,
    /// The case status code the server last reported.
    pub status: Option<String>,
    /// The status in words (zh-CN).
    pub status_label: Option<String>,
    /// The closing note, or why it was not accepted.
    pub closing_note: Option<String>,
}

impl NewCitizenReport {
    fn validate(&self) -> Result<()> {
        let invalid = |m: String| Err(Error::Invalid(EventError::Invalid(m)));
        if uuid::Uuid::parse_str(&self.id).is_err() {
            return invalid(format!(
                "上报编号不是 UUID / report id is not a UUID: {:?}",
                self.id
            ));
        }
        let text = self.text.trim();
        if text.is_empty() {
            return invalid("请写一句话说明问题 / write one line about the problem".into());
        }
        if text.chars().count() > MAX_REPORT_CHARS || text.contains(['\n', '\r']) {
            return invalid(format!(
                "说明只能一行，最多 {MAX_REPORT_CHARS} 字 / one line of at most {MAX_REPORT_CHARS} characters"
            ));
        }
        if let Err(e) = crate::text::check(text) {
            return invalid(format!("说明 / text: {e}"));
        }
        if !self.location.is_valid() {
            return invalid("位置无效 / the location is invalid".into());
        }
        if self.photos.is_empty() || self.photos.len() > MAX_REPORT_PHOTOS {
            return invalid(format!(
                "请附 1–{MAX_REPORT_PHOTOS} 张照片 / attach 1–{MAX_REPORT_PHOTOS} photos"
            ));
        }
        Ok(())
    }
}

impl Store {
    /// Keeps a citizen's report for submission (works offline). Every photo must have been
    /// captured for this report. Submitting the same id again with the same content returns
    /// the kept report; with other content it is refused.
    pub fn submit_citizen_report(
        &self,
        new: NewCitizenReport,
        at: Moment,
    ) -> Result<CitizenReportView> {
        new.validate()?;
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        for hash in &new.photos {
            let owner: Option<String> = tx
                .query_row("SELECT case_id FROM photos WHERE hash = ?1", [hash], |r| {
                    r.get(0)
                })
                .optional()?;
            if owner.as_deref() != Some(new.id.as_str()) {
                return Err(Error::Invalid(EventError::Invalid(format!(
                    "照片 {hash} 不属于这次上报 / photo {hash} was not taken for this report"
                ))));
            }
        }
        let photos =
            serde_json::to_string(&new.photos).map_err(|e| Error::Config(e.to_string()))?;
        let text = new.text.trim().to_owned();
        let existing = read_report(&tx, &new.id)?;
        if let Some(existing) = existing {
            let same = existing.category == new.category
                && existing.text == text
                && existing.photos == new.photos
                && existing.location == new.location;
            tx.commit()?;
            return if same {
                Ok(existing)
            } else {
                Err(Error::Invalid(EventError::Invalid(format!(
                    "上报编号 {} 已被使用 / report id {} is already used",
                    new.id, new.id
                ))))
            };
        }
        tx.execute(
            "INSERT INTO citizen_reports (id, category, text, lat, lon, accuracy_m, photos,
                 created_at, state, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?9)",
            params![
                new.id,
                new.category.code(),
                text,
                new.location.point.lat,
                new.location.point.lon,
                new.location.accuracy_m,
                photos,
                at.at_ms,
                now_ms()
            ],
        )?;
        let view = read_report(&tx, &new.id)?.ok_or_else(|| Error::NotFound(new.id.clone()))?;
        tx.commit()?;
        Ok(view)
    }

    /// The citizen's reports, newest first.
    pub fn citizen_reports(&self) -> Result<Vec<CitizenReportView>> {
        let conn = self.lock();
        let ids: Vec<String> = conn
            .prepare_cached("SELECT id FROM citizen_reports ORDER BY created_at DESC, id")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        ids.iter()
            .filter_map(|id| read_report(&conn, id).transpose())
            .collect()
    }

    /// Reports waiting to be submitted, as wire messages.
    pub(crate) fn pending_citizen_reports(&self) -> Result<Vec<CitizenReport>> {
        let conn = self.lock();
        let ids: Vec<String> = conn
            .prepare_cached(
                "SELECT id FROM citizen_reports WHERE state = 'pending' ORDER BY created_at, id",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(v) = read_report(&conn, &id)? {
                out.push(CitizenReport {
                    protocol: PROTOCOL_VERSION,
                    id: v.id,
                    category: v.category.code().to_owned(),
                    text: v.text,
                    location: v.location,
                    photos: v.photos,
                    reported_at_ms: v.created_at_ms,
                });
            }
        }
        Ok(out)
    }

    /// Records the server's answer to a submission: accepted into `grid_id`, or refused.
    pub(crate) fn citizen_report_answered(
        &self,
        id: &str,
        outcome: std::result::Result<&str, &str>,
    ) -> Result<()> {
        let conn = self.lock();
        match outcome {
            Ok(grid_id) => conn.execute(
                "UPDATE citizen_reports SET state = 'submitted', grid_id = ?2, error = NULL,
                     updated_at = ?3 WHERE id = ?1",
                params![id, grid_id, now_ms()],
            )?,
            Err(message) => {
                // Its photos have no case to belong to: set them aside, with the reason.
                conn.execute(
                    "UPDATE photos SET state = 'quarantined', last_error = ?2
                     WHERE case_id = ?1 AND state != 'uploaded'",
                    params![id, message],
                )?;
                conn.execute(
                    "UPDATE citizen_reports SET state = 'refused', error = ?2, updated_at = ?3
                     WHERE id = ?1",
                    params![id, message, now_ms()],
                )?
            }
        };
        Ok(())
    }

    /// Stores the status list the server sent.
    pub(crate) fn apply_my_reports(&self, mine: &MyReports) -> Result<()> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        for r in &mine.reports {
            tx.execute(
                "UPDATE citizen_reports SET state = 'submitted', grid_id = ?2, status = ?3,
                     status_label = ?4, closing_note = ?5, updated_at = ?6
                 WHERE id = ?1",
                params![
                    r.id,
                    r.grid_id,
                    r.status,
                    r.status_label,
                    r.closing_note,
                    r.updated_at_ms
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

fn read_report(conn: &rusqlite::Connection, id: &str) -> Result<Option<CitizenReportView>> {
    let row = conn
        .prepare_cached(
            "SELECT id, category, text, lat, lon, accuracy_m, photos, created_at, state, error,
                 grid_id, status, status_label, closing_note
             FROM citizen_reports WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                (
                    r.get::<_, f64>(3)?,
                    r.get::<_, f64>(4)?,
                    r.get::<_, f64>(5)?,
                ),
                r.get::<_, String>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, String>(8)?,
                (
                    r.get::<_, Option<String>>(9)?,
                    r.get::<_, Option<String>>(10)?,
                    r.get::<_, Option<String>>(11)?,
                    r.get::<_, Option<String>>(12)?,
                    r.get::<_, Option<String>>(13)?,
                ),
            ))
        })
        .optional()?;
    let Some((id, category, text, (lat, lon, accuracy_m), photos, created, state, rest)) = row
    else {
        return Ok(None);
    };
    let (error, grid_id, status, status_label, closing_note) = rest;
    Ok(Some(CitizenReportView {
        category: Category::from_code(&category).unwrap_or(Category::Other),
        text,
        location: Location {
            point: crate::geo::LatLon { lat, lon },
            accuracy_m,
        },
        photos: serde_json::from_str(&photos).unwrap_or_default(),
        created_at_ms: created,
        state: CitizenReportState::from_code(&state),
        error,
        grid_id,
        status,
        status_label,
        closing_note,
        id,
    }))
}
