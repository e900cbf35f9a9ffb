//! Record documents the server writes or reads for people: checklist templates authored by
//! the command centre, the district's register of standard addresses (一标多实) imported as
//! address documents, and patrol coverage per grid.
//!
//! - `POST /v1/templates` (operators): a template as JSON; published as the next version of
//!   its document, which reaches every phone read-only by sync. `GET /v1/templates`: the
//!   current versions.
//! - `GET /v1/patrols/coverage?grid=G&days=N`: the grid's addresses, each with its last
//!   completed visit and whether it is overdue (none in the last N days, default 30).

use crate::authored::Author;
use crate::error::ApiError;
use crate::state::{AppState, now_ms};
use crate::store::StoreError;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gridlink_core::address::{
    AddressChange, AddressDetails, AddressRecord, Enterprise, EnterpriseKind, House, HouseUse,
    Person, Residency, Tenure, address_doc_id,
};
use gridlink_core::case::{Role, Stamp};
use gridlink_core::checklist::{
    Template, TemplateChange, TemplateDetails, TemplateRecord, current_template, template_doc_id,
};
use gridlink_core::doc::RecordDoc;
use gridlink_core::geo::LatLon;
use gridlink_core::sync::access::{PLATFORM_DEVICE, Pusher};
use gridlink_core::sync::scope::{ScopeKey, grid_scopes};
use gridlink_core::sync::wire::PushDoc;
use serde::Deserialize;
use std::collections::BTreeSet;

/// The platform itself, pushing as the pseudo-device `server` (automatic escalation, imports).
pub fn platform_pusher() -> Pusher {
    Pusher {
        user_id: "system".into(),
        role: Role::System,
        device_id: PLATFORM_DEVICE.into(),
        scopes: BTreeSet::from([ScopeKey::District]),
    }
}

fn platform_stamp(at_ms: i64) -> Stamp {
    Stamp {
        actor: "system".into(),
        role: Role::System,
        device: PLATFORM_DEVICE.into(),
        at_ms,
        location: None,
    }
}

/// Publishes `template` as the next version of its document, as `author` (an operator's
/// device, or the platform), by the one path of the server's writes. Returns the version
/// written.
pub fn publish_template(
    state: &AppState,
    author: &Author,
    mut template: Template,
) -> Result<u32, ApiError> {
    let doc_id = template_doc_id(&template.id);
    // One write of an author at a time: each loads what the one before committed.
    let _serial = state.action_lock(&author.pusher.device_id);
    let stored = state.store().load_doc(&doc_id)?;
    let actor = author.actor();
    let stamp = author.stamp(now_ms());
    let invalid = |e: String| ApiError::refused(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e);
    let changes = match stored {
        None => {
            template.version = template.version.max(1);
            template.validate().map_err(|e| invalid(e.to_string()))?;
            let (mut doc, _) = RecordDoc::create::<TemplateRecord>(
                &doc_id,
                &TemplateDetails {
                    template_id: template.id.clone(),
                },
                vec![TemplateChange::Published {
                    template: template.clone(),
                }],
                &stamp,
                actor,
            )
            .map_err(|e| invalid(e.to_string()))?;
            doc.save()
        }
        Some(stored) => {
            let mut doc = RecordDoc::load(&doc_id, &stored.bytes)
                .map_err(|e| ApiError::Internal(format!("{doc_id}: {e}")))?;
            doc.set_actor(actor);
            let details = doc
                .details::<TemplateRecord>()
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            let entries = doc
                .entries::<TemplateRecord>()
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            let current = current_template(&details, &entries).map_or(0, |t| t.version);
            template.version = current + 1;
            template.validate().map_err(|e| invalid(e.to_string()))?;
            let before = doc.heads();
            doc.append::<TemplateRecord>(
                vec![TemplateChange::Published {
                    template: template.clone(),
                }],
                &stamp,
            )
            .map_err(|e| invalid(e.to_string()))?;
            doc.save_after(&before)
        }
    };
    crate::authored::submit(
        state,
        author,
        vec![PushDoc { doc_id, changes }],
        crate::merge::Origin::Recorded,
    )?;
    Ok(template.version)
}

/// `POST /v1/templates`.
pub async fn post_template(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let (device, body) =
        crate::http::authenticated_body(&state, headers, body, crate::http::MAX_REQUEST_BODY_BYTES)
            .await?;
    crate::http::blocking(move || {
        if device.user.role != Role::Operator {
            return Err(ApiError::Forbidden(
                "只有指挥中心可以发布巡查清单 / only the command centre publishes checklists"
                    .into(),
            ));
        }
        let template: Template = serde_json::from_slice(&body).map_err(|e| {
            ApiError::BadRequest(format!("清单格式不对 / the template is malformed: {e}"))
        })?;
        let author = Author::device(&state, &device)?;
        let id = template.id.clone();
        let version = publish_template(&state, &author, template)?;
        Ok((
            StatusCode::CREATED,
            Json(serde_json::json!({ "template_id": id, "version": version })),
        )
            .into_response())
    })
    .await
}

/// `GET /v1/templates`.
pub async fn list_templates(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    crate::http::blocking(move || {
        let device = state.authenticate(&headers)?;
        if device.user.role == Role::Citizen {
            return Err(ApiError::Forbidden(
                "市民不使用巡查清单 / citizens do not use checklists".into(),
            ));
        }
        let mut out = Vec::new();
        for id in state.store().record_ids("template")? {
            let Some(stored) = state.store().load_doc(&id)? else {
                continue;
            };
            let doc = RecordDoc::load(&id, &stored.bytes)
                .map_err(|e| ApiError::Internal(format!("{id}: {e}")))?;
            let (Ok(details), Ok(entries)) = (
                doc.details::<TemplateRecord>(),
                doc.entries::<TemplateRecord>(),
            ) else {
                continue;
            };
            out.extend(current_template(&details, &entries));
        }
        Ok(Json(out).into_response())
    })
    .await
}

/// Coverage query.
#[derive(Debug, Deserialize)]
pub struct CoverageQuery {
    /// Grid id.
    pub grid: String,
    /// Period in days (default 30, at most 366).
    pub days: Option<u32>,
}

/// `GET /v1/patrols/coverage`.
pub async fn coverage(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CoverageQuery>,
) -> Result<Response, ApiError> {
    crate::http::blocking(move || {
        let device = state.authenticate(&headers)?;
        let pusher = state.pusher(&device)?;
        let days = q.days.unwrap_or(30);
        if days == 0 || days > 366 {
            return Err(ApiError::BadRequest(
                "天数应在 1–366 之间 / days must be 1–366".into(),
            ));
        }
        let not_found = || {
            ApiError::refused(
                StatusCode::NOT_FOUND,
                "not_found",
                "没有这个网格，或无权查看 / no such grid, or not yours to see",
            )
        };
        let place = state
            .store()
            .grids()?
            .into_iter()
            .find(|g| g.grid_id == q.grid)
            .ok_or_else(not_found)?;
        if device.user.role == Role::Citizen || !pusher.may_read(&grid_scopes(&place)) {
            return Err(not_found());
        }
        let since = now_ms() - i64::from(days) * 86_400_000;
        let rows = state.store().coverage(&q.grid)?;
        let visited = rows
            .iter()
            .filter(|r| r.last_visit_ms.is_some_and(|t| t >= since))
            .count();
        let addresses: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "code": r.code,
                    "text": r.text,
                    "last_visit_ms": r.last_visit_ms,
                    "overdue": r.last_visit_ms.is_none_or(|t| t < since),
                })
            })
            .collect();
        Ok(Json(serde_json::json!({
            "grid_id": q.grid,
            "days": days,
            "addresses": rows.len(),
            "visited": visited,
            "overdue": rows.len() - visited,
            "coverage": if rows.is_empty() { 1.0 } else { visited as f64 / rows.len() as f64 },
            "list": addresses,
        }))
        .into_response())
    })
    .await
}

/// `GET /v1/grids`: the district's grid outlines (GeoJSON, WGS-84) for the phones' maps and
/// their "which grid am I in". Any enrolled device may read them: outlines are public
/// geography, not case data.
pub async fn grid_map(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    crate::http::blocking(move || {
        state.authenticate(&headers)?;
        let shapes = state.store().setting("grid_shapes")?.ok_or_else(|| {
            ApiError::refused(
                StatusCode::NOT_FOUND,
                "not_found",
                "尚未导入网格地图 / no grid map has been imported",
            )
        })?;
        Ok((
            [(axum::http::header::CONTENT_TYPE, "application/geo+json")],
            shapes,
        )
            .into_response())
    })
    .await
}

/// A fixture address as an address document: the registered address, then its houses,
/// people and enterprises as entries by the platform (the register's import).
pub fn address_record(
    address: &gridlink_fixtures::Address,
    at_ms: i64,
) -> Result<RecordDoc, gridlink_core::Error> {
    let details = AddressDetails {
        code: address.code.clone(),
        text: address.text.clone(),
        point: LatLon::new(address.lat, address.lon),
        grid_id: address.grid_id.clone(),
    };
    let mut changes = Vec::new();
    for (i, h) in address.houses.iter().enumerate() {
        let (usage, tenure) = match h.usage.as_str() {
            "出租" => (HouseUse::Residential, Tenure::Rented),
            "商用" => (HouseUse::Commercial, Tenure::Rented),
            "空置" => (HouseUse::Residential, Tenure::Vacant),
            _ => (HouseUse::Residential, Tenure::OwnerOccupied),
        };
        changes.push(AddressChange::HouseAdded {
            house_id: format!("h{i}"),
            house: House {
                label: h.unit.clone(),
                usage,
                area_m2: h.area_m2,
                tenure,
            },
        });
    }
    for (i, p) in address.people.iter().enumerate() {
        changes.push(AddressChange::PersonAdded {
            person_id: format!("p{i}"),
            person: Person {
                name: p.name.clone(),
                id_number: p.id_number.clone(),
                phone: Some(p.phone.clone()),
                residency: match (p.registered, p.resident) {
                    (true, true) => Residency::RegisteredResident,
                    (true, false) => Residency::RegisteredAbsent,
                    _ => Residency::NonRegistered,
                },
                house_id: None,
                moved_in: Some(p.moved_in.clone()),
            },
        });
    }
    for (i, e) in address.enterprises.iter().enumerate() {
        changes.push(AddressChange::EnterpriseAdded {
            enterprise_id: format!("e{i}"),
            enterprise: Enterprise {
                name: e.name.clone(),
                credit_code: e.credit_code.clone(),
                kind: match e.kind.as_str() {
                    "管理" => EnterpriseKind::Management,
                    "服务" => EnterpriseKind::Service,
                    "工业" => EnterpriseKind::Industrial,
                    _ => EnterpriseKind::Business,
                },
                contact: e.contact.clone(),
                phone: Some(e.phone.clone()),
                responsibilities: vec!["消防安全".into(), "门前三包".into()],
            },
        });
    }
    let actor = gridlink_core::sync::device_actor(&crate::state::SERVER_ACTOR_PREFIX, 0);
    let (doc, _) = RecordDoc::create::<AddressRecord>(
        &address_doc_id(&address.code),
        &details,
        changes,
        &platform_stamp(at_ms),
        actor,
    )?;
    Ok(doc)
}

/// Imports the district's register of standard addresses (addresses already present are
/// left as they are) and publishes the standard checklists that are missing. Returns how
/// many addresses were added.
pub fn import_base_data(
    state: &AppState,
    district: &gridlink_fixtures::District,
) -> Result<usize, StoreError> {
    let now = now_ms();
    let mut batch = Vec::new();
    for address in &district.addresses {
        if state
            .store()
            .load_doc(&address_doc_id(&address.code))?
            .is_some()
        {
            continue;
        }
        batch.push(address_record(address, now).map_err(|e| StoreError::Conflict(e.to_string()))?);
    }
    let added = batch.len();
    for chunk in batch.chunks(500) {
        let docs = chunk.to_vec();
        state.with_merger(move |m| m.import_records(docs, "server", Vec::new()))??;
    }
    let platform = Author::platform();
    for template in gridlink_core::checklist::standard_templates() {
        if state
            .store()
            .load_doc(&template_doc_id(&template.id))?
            .is_none()
        {
            publish_template(state, &platform, template)
                .map_err(|e| StoreError::Database(e.to_string()))?;
        }
    }
    Ok(added)
}
