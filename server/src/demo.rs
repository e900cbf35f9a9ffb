//! Loading the fixture district into a server store: grids, users with the grants their role
//! implies, and a deterministic history of cases (for the demo, the tests and the benchmarks).

use crate::identity;
use crate::state::AppState;
use crate::store::{ServerStore, StoreError, User};
use gridlink_core::case::{
    CaseDetails, Category, DispatchTarget, EventKind, Level, Location, Role, Source, Stamp,
};
use gridlink_core::doc::CaseDoc;
use gridlink_core::geo::LatLon;
use gridlink_core::sync::device_actor;
use gridlink_core::sync::scope::{GridPlace, ScopeKey};
use gridlink_fixtures::District;
use std::sync::Arc;

/// The scope keys a fixture user's role and assignments imply.
pub fn grants_for(user: &gridlink_fixtures::User) -> Vec<ScopeKey> {
    let keys = |prefix: fn(String) -> ScopeKey, ids: &[String]| {
        ids.iter().cloned().map(prefix).collect::<Vec<_>>()
    };
    match Role::from_code(&user.role) {
        Some(Role::GridInspector | Role::ProfessionalInspector) => {
            keys(ScopeKey::Grid, &user.grid_ids)
        }
        // Mediators also hold the mediation keys of their area: mediation files reach them
        // by those, never by the area's case keys.
        Some(Role::Mediator) => {
            let areas: &[String] = if !user.village_ids.is_empty() {
                &user.village_ids
            } else if !user.town_ids.is_empty() {
                &user.town_ids
            } else {
                &user.grid_ids
            };
            let mut k = keys(ScopeKey::Mediation, areas);
            k.extend(if !user.village_ids.is_empty() {
                keys(ScopeKey::Village, areas)
            } else if !user.town_ids.is_empty() {
                keys(ScopeKey::Town, areas)
            } else {
                keys(ScopeKey::Grid, areas)
            });
            k
        }
        Some(Role::GridChief) if !user.village_ids.is_empty() => {
            keys(ScopeKey::Village, &user.village_ids)
        }
        Some(Role::GridChief) if !user.town_ids.is_empty() => keys(ScopeKey::Town, &user.town_ids),
        Some(Role::GridChief) => keys(ScopeKey::Grid, &user.grid_ids),
        Some(Role::DepartmentHandler) => user
            .department
            .iter()
            .cloned()
            .map(ScopeKey::Department)
            .collect(),
        Some(Role::LawEnforcement) => user
            .department
            .iter()
            .cloned()
            .map(ScopeKey::Enforcement)
            .collect(),
        Some(Role::Operator) => vec![ScopeKey::District],
        Some(Role::Citizen) => vec![ScopeKey::Reporter(user.id.clone())],
        Some(Role::System) | None => Vec::new(),
    }
}

/// What an import added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Imported {
    /// Grids written.
    pub grids: usize,
    /// Users added (existing ones are left as they are).
    pub users: usize,
    /// Cases created.
    pub cases: usize,
}

/// Writes the district's grids, and its users with their grants (users that exist already
/// are skipped, so importing twice is harmless).
pub fn import_district(state: &AppState, district: &District) -> Result<Imported, StoreError> {
    let store = state.store();
    let grids: Vec<GridPlace> = district
        .grids
        .iter()
        .map(|g| GridPlace {
            grid_id: g.id.clone(),
            village_id: g.village_id.clone(),
            town_id: g.town_id.clone(),
        })
        .collect();
    store.put_grids(&grids)?;
    store.put_setting(
        "grid_shapes",
        district.grids_geojson().to_string().as_bytes(),
    )?;
    store.put_setting(
        "district_admin",
        district.admin_json().to_string().as_bytes(),
    )?;
    state.reload_grid_index()?;
    state.with_merger(|m| m.reload_grids())??;
    let mut users = 0;
    for u in &district.users {
        let Some(role) = Role::from_code(&u.role) else {
            continue;
        };
        if store.user(&u.id)?.is_some() {
            continue;
        }
        store.add_user(
            &User {
                id: u.id.clone(),
                name: u.name.clone(),
                role,
            },
            "import",
        )?;
        for key in grants_for(u) {
            store.grant(&u.id, &key, "import")?;
        }
        users += 1;
    }
    Ok(Imported {
        grids: grids.len(),
        users,
        cases: 0,
    })
}

const TITLES: &[(Category, &str)] = &[
    (Category::Sanitation, "河道漂浮垃圾"),
    (Category::Sanitation, "垃圾桶满溢未清运"),
    (Category::FireHazard, "楼道堆放杂物堵塞消防通道"),
    (Category::FireHazard, "电动车在楼道内充电"),
    (Category::IllegalConstruction, "屋顶违章搭建"),
    (Category::GroupRental, "疑似群租房"),
    (Category::Environment, "工地夜间施工噪声扰民"),
];

/// Creates `count` cases spread over the basic grids, reported by the grids' inspectors and
/// carried along the closed loop to varied points (reported, accepted, solved in the grid and
/// closed, escalated and dispatched). Deterministic for a given `seed`.
pub fn seed_cases(
    state: &AppState,
    district: &District,
    count: usize,
    seed: u64,
    now_ms: i64,
) -> Result<usize, StoreError> {
    seed_cases_over(state, district, count, seed, now_ms, 30)
}

/// [`seed_cases`] with the report times spread over the `days` before `now_ms`.
pub fn seed_cases_over(
    state: &AppState,
    district: &District,
    count: usize,
    seed: u64,
    now_ms: i64,
    days: i64,
) -> Result<usize, StoreError> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let actor = device_actor(&crate::state::SERVER_ACTOR_PREFIX, 0);
    let inspector = |grid: &str| {
        district
            .users
            .iter()
            .find(|u| u.role == "grid_inspector" && u.grid_ids.iter().any(|g| g == grid))
    };
    let chief = |village: &str| {
        district
            .users
            .iter()
            .find(|u| u.role == "grid_chief" && u.village_ids.iter().any(|v| v == village))
    };
    let grids: Vec<_> = district
        .grids
        .iter()
        .filter(|g| inspector(&g.id).is_some())
        .collect();
    if grids.is_empty() {
        return Ok(0);
    }
    let mut docs = Vec::with_capacity(count);
    let mut created = 0;
    for i in 0..count {
        let grid = grids[i % grids.len()];
        let (Some(reporter), Some(chief)) = (inspector(&grid.id), chief(&grid.village_id)) else {
            continue;
        };
        let (category, title) = TITLES[rng.usize(..TITLES.len())];
        let at = now_ms - rng.i64(3_600_000..days.max(1) * 86_400_000);
        let centre = point_in(&grid.ring, &mut rng);
        let stamp = |user: &gridlink_fixtures::User, role: Role, at_ms: i64| Stamp {
            actor: user.id.clone(),
            role,
            device: "server-import".into(),
            at_ms,
            location: None,
        };
        let id = uuid::Builder::from_random_bytes(rng.u128(..).to_le_bytes())
            .into_uuid()
            .to_string();
        let details = CaseDetails {
            id,
            category,
            source: Source::GridInspector,
            title: title.to_owned(),
            description: format!("{}：{}", grid.name, title),
            location: Some(Location {
                point: centre,
                accuracy_m: 8.0,
            }),
            address_id: None,
            grid_id: grid.id.clone(),
            reporter: None,
            priority: Default::default(),
        };
        let conflict = |e: gridlink_core::Error| StoreError::Conflict(e.to_string());
        let (mut doc, _) = CaseDoc::create(
            details,
            Vec::new(),
            stamp(reporter, Role::GridInspector, at),
            actor.clone(),
        )
        .map_err(conflict)?;
        let step = |doc: &mut CaseDoc, kind: EventKind, st: Stamp| {
            doc.record(kind, st).map(|_| ()).map_err(conflict)
        };
        match i % 4 {
            0 => {}
            1 => step(
                &mut doc,
                EventKind::Accepted {
                    assignee: Some(reporter.id.clone()),
                    due_at_ms: Some(at + 3 * 86_400_000),
                },
                stamp(chief, Role::GridChief, at + 600_000),
            )?,
            2 => {
                step(
                    &mut doc,
                    EventKind::ResolvedInGrid {
                        note: "已现场处置".into(),
                    },
                    stamp(reporter, Role::GridInspector, at + 1_800_000),
                )?;
                step(
                    &mut doc,
                    EventKind::Verified {
                        note: "核查属实，已整改".into(),
                    },
                    stamp(chief, Role::GridChief, at + 7_200_000),
                )?;
                step(
                    &mut doc,
                    EventKind::Closed {
                        note: "已办结".into(),
                    },
                    stamp(chief, Role::GridChief, at + 7_300_000),
                )?;
            }
            _ => {
                step(
                    &mut doc,
                    EventKind::Accepted {
                        assignee: None,
                        due_at_ms: None,
                    },
                    stamp(chief, Role::GridChief, at + 600_000),
                )?;
                step(
                    &mut doc,
                    EventKind::Escalated {
                        to: Level::Town,
                        reason: "需要职能部门处置".into(),
                    },
                    stamp(chief, Role::GridChief, at + 900_000),
                )?;
                let departments: Vec<_> = district
                    .departments
                    .iter()
                    .filter(|d| d.kind == "department")
                    .collect();
                if let Some(dept) = departments.get((i / 4) % departments.len().max(1)) {
                    step(
                        &mut doc,
                        EventKind::Dispatched {
                            target: DispatchTarget::Department {
                                code: dept.code.clone(),
                                name: dept.name.clone(),
                            },
                            due_at_ms: Some(at + 5 * 86_400_000),
                            note: "请按期处置".into(),
                        },
                        stamp(chief, Role::GridChief, at + 1_200_000),
                    )?;
                }
            }
        }
        docs.push(doc);
        created += 1;
        if docs.len() == 500 {
            let batch = std::mem::take(&mut docs);
            state.with_merger(move |m| m.import(batch))??;
        }
    }
    state.with_merger(move |m| m.import(docs))??;
    Ok(created)
}

/// A random point inside a grid's ring (`[lon, lat]`, closed): between its centroid and one
/// of its corners (the fixture's grids are convex).
fn point_in(ring: &[[f64; 2]], rng: &mut fastrand::Rng) -> LatLon {
    let corners = &ring[..ring.len().saturating_sub(1).max(1).min(ring.len())];
    if corners.is_empty() {
        return LatLon::new(31.16, 120.64);
    }
    let n = corners.len() as f64;
    let (lon, lat) = corners
        .iter()
        .fold((0.0, 0.0), |(x, y), p| (x + p[0] / n, y + p[1] / n));
    let corner = corners[rng.usize(..corners.len())];
    let t = rng.f64() * 0.8;
    LatLon::new(lat + t * (corner[1] - lat), lon + t * (corner[0] - lon))
}

/// A command-centre sign-in the demo prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebLogin {
    /// User id.
    pub user: String,
    /// The password just set.
    pub password: String,
    /// What they see: `district` or `town:ID`.
    pub scope: String,
}

/// Gives the demo's command centre two operators with fresh random passwords: the fixture's
/// first operator (the whole district) and an operator of the first town only (created on
/// first use as `op-town-01`), to show that a town sees only its own cases.
pub fn web_logins(
    state: &AppState,
    district: &District,
    by: &str,
) -> anyhow::Result<Vec<WebLogin>> {
    let store = state.store();
    let mut logins = Vec::new();
    let password =
        || -> anyhow::Result<String> { identity::new_enroll_code().map_err(anyhow::Error::msg) };
    if let Some(op) = district.users.iter().find(|u| u.role == "operator") {
        let pw = password()?;
        crate::web::set_password(state, &op.id, &pw, by)?;
        logins.push(WebLogin {
            user: op.id.clone(),
            password: pw,
            scope: "district".into(),
        });
    }
    if let Some(town) = district.towns.first() {
        let id = "op-town-01";
        if store.user(id)?.is_none() {
            store.add_user(
                &User {
                    id: id.into(),
                    name: format!("{}指挥分中心", town.name),
                    role: Role::Operator,
                },
                by,
            )?;
        }
        let scope = ScopeKey::Town(town.id.clone());
        store.grant(id, &scope, by)?;
        let pw = password()?;
        crate::web::set_password(state, id, &pw, by)?;
        logins.push(WebLogin {
            user: id.into(),
            password: pw,
            scope: scope.to_string(),
        });
    }
    Ok(logins)
}

/// Creates a one-time enrollment code for a user, valid for `hours`, and returns it.
pub fn enroll_code(
    state: &AppState,
    user_id: &str,
    hours: i64,
    by: &str,
) -> Result<String, StoreError> {
    let code = identity::new_enroll_code().map_err(StoreError::Database)?;
    let expires = crate::state::now_ms().saturating_add(hours.saturating_mul(3_600_000));
    state.store().add_enroll_code(
        user_id,
        &identity::hash_secret(&identity::normalize_code(&code)),
        expires,
        by,
    )?;
    Ok(code)
}

/// A server state over a fresh SQLite data directory under `root` holding the fixture district
/// (no cases), without rate limits: what the benchmarks start from. With
/// `GRIDLINK_BENCH_DATABASE` set (`cargo xtask bench nodes` sets it to an empty database), the
/// district master is on that PostgreSQL database instead.
pub fn bench_state(
    root: &std::path::Path,
) -> Result<(Arc<dyn ServerStore>, AppState, District), StoreError> {
    let store: Arc<dyn ServerStore> = match std::env::var("GRIDLINK_BENCH_DATABASE") {
        Ok(url) if !url.is_empty() => Arc::new(crate::store::PgStore::open(&url)?),
        _ => Arc::new(crate::store::SqliteStore::open(&root.join("server"))?),
    };
    let config = crate::state::ServerConfig {
        rate_limits: crate::limits::RateLimits::unlimited(),
        ..crate::state::ServerConfig::default()
    };
    let state = AppState::new(store.clone(), &root.join("blobs"), config)?;
    let district = District::generate(gridlink_fixtures::Scale::Small);
    import_district(&state, &district)?;
    Ok((store, state, district))
}

/// The setting that records how many cases a kept benchmark data directory was seeded with.
const BENCH_CASES: &str = "bench_web_cases";

/// [`bench_state`] holding `cases` cases reported over the 270 days before now, seeded through
/// the real merge path in slices of a month (`progress` hears after each). A directory that
/// already holds that many (a kept one: seeding 1.2 M cases takes about an hour) is reused as
/// it is; one holding another number is emptied first. Answers whether it was reused.
pub fn kept_bench_state(
    root: &std::path::Path,
    cases: usize,
    progress: impl Fn(String),
) -> Result<(Arc<dyn ServerStore>, AppState, District, bool), StoreError> {
    let (mut store, mut state, mut district) = bench_state(root)?;
    let reuse = store.setting(BENCH_CASES)?.as_deref() == Some(cases.to_string().as_bytes());
    if reuse {
        return Ok((store, state, district, true));
    }
    if store.doc_count()? > 0 {
        drop((store, state));
        std::fs::remove_dir_all(root).map_err(|e| StoreError::Database(e.to_string()))?;
        (store, state, district) = bench_state(root)?;
    }
    let started = std::time::Instant::now();
    let now = crate::state::now_ms();
    let mut seeded = 0;
    let slices = 9;
    for slice in 0..slices {
        let n = cases / slices + usize::from(slice < cases % slices);
        let end = now - (slice as i64) * 30 * 86_400_000;
        seeded += seed_cases_over(&state, &district, n, 17 + slice as u64, end, 30)?;
        progress(format!(
            "seeded {seeded} of {cases} cases in {:.0} s",
            started.elapsed().as_secs_f64()
        ));
    }
    store.put_setting(BENCH_CASES, cases.to_string().as_bytes())?;
    Ok((store, state, district, false))
}

/// What [`seed_field_work`] added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FieldWork {
    /// Standard addresses imported.
    pub addresses: usize,
    /// Completed patrol visits.
    pub visits: usize,
    /// Mediation files.
    pub mediation_files: usize,
}

/// The demo's base data and field work: the register of standard addresses and the standard
/// checklists ([`crate::records::import_base_data`]), a completed household visit to about
/// one address in `1 / every` of each basic grid by its inspector over the last 30 days, and
/// a mediation file in each of the first `files` villages (one agreed and awaiting judicial
/// confirmation, the others at various rungs). Deterministic for a given `seed`.
pub fn seed_field_work(
    state: &AppState,
    district: &District,
    every: usize,
    files: usize,
    seed: u64,
    now_ms: i64,
) -> Result<FieldWork, StoreError> {
    use gridlink_core::checklist::{
        Answer, Item, ItemKind, VisitDetails, VisitRecord, VisitStep, visit_doc_id,
    };
    use gridlink_core::doc::RecordDoc;
    use gridlink_core::mediation::{
        DisputeType, MediationDetails, MediationRecord, MediationStep, Party, Rung, Side, Team,
        mediation_doc_id,
    };
    let addresses = crate::records::import_base_data(state, district)?;
    let conflict = |e: gridlink_core::Error| StoreError::Conflict(e.to_string());
    let mut rng = fastrand::Rng::with_seed(seed);
    let actor = device_actor(&crate::state::SERVER_ACTOR_PREFIX, 0);
    let household = gridlink_core::checklist::standard_templates()
        .into_iter()
        .find(|t| t.id == "household")
        .ok_or_else(|| StoreError::NotFound("household template".into()))?;
    let answer_for =
        |item: &Item| match &item.kind {
            // The answer that raises no hazard.
            ItemKind::YesNo => Answer::YesNo(!item.hazard.as_ref().is_some_and(|h| {
                matches!(h.when, gridlink_core::checklist::Trigger::Answer(true))
            })),
            ItemKind::Number { .. } => Answer::Number(3.0),
            ItemKind::Choice { options } => {
                Answer::Choice(options.first().cloned().unwrap_or_default())
            }
            ItemKind::Text => Answer::Text("正常".into()),
            ItemKind::Photo => Answer::Photos(Vec::new()),
        };
    let inspector_of = |grid: &str| {
        district
            .users
            .iter()
            .find(|u| u.role == "grid_inspector" && u.grid_ids.iter().any(|g| g == grid))
    };
    let stamp = |user: &str, role: Role, at_ms: i64, point: Option<LatLon>| Stamp {
        actor: user.to_owned(),
        role,
        device: "server-import".into(),
        at_ms,
        location: point.map(|point| Location {
            point,
            accuracy_m: 10.0,
        }),
    };
    let mut visits = Vec::new();
    for (i, address) in district.addresses.iter().enumerate() {
        if i % every.max(1) != 0 {
            continue;
        }
        let Some(inspector) = inspector_of(&address.grid_id) else {
            continue;
        };
        let at = now_ms - rng.i64(3_600_000..30 * 86_400_000);
        let point = LatLon::new(address.lat, address.lon);
        let id = uuid::Builder::from_random_bytes(rng.u128(..).to_le_bytes())
            .into_uuid()
            .to_string();
        let mut steps = vec![VisitStep::CheckedIn {
            location: Location {
                point,
                accuracy_m: 10.0,
            },
            distance_m: 0.0,
            off_site: false,
        }];
        steps.extend(
            household
                .items
                .iter()
                .filter(|item| !matches!(item.kind, ItemKind::Photo))
                .map(|item| VisitStep::Answered {
                    item_id: item.id.clone(),
                    answer: answer_for(item),
                }),
        );
        steps.push(VisitStep::CheckedOut);
        let (doc, _) = RecordDoc::create::<VisitRecord>(
            &visit_doc_id(&id),
            &VisitDetails {
                visit_id: id.clone(),
                inspector: inspector.id.clone(),
                address_code: address.code.clone(),
                grid_id: address.grid_id.clone(),
                template: household.clone(),
            },
            steps,
            &stamp(&inspector.id, Role::GridInspector, at, Some(point)),
            actor.clone(),
        )
        .map_err(conflict)?;
        visits.push(doc);
    }
    let visit_count = visits.len();
    for chunk in visits.chunks(500) {
        let docs = chunk.to_vec();
        state.with_merger(move |m| m.import_records(docs, "server", Vec::new()))??;
    }

    let mut files_made = Vec::new();
    let people: Vec<&gridlink_fixtures::Person> =
        district.addresses.iter().flat_map(|a| &a.people).collect();
    for (n, village) in district.villages.iter().take(files).enumerate() {
        let Some(mediator) = district
            .users
            .iter()
            .find(|u| u.role == "mediator" && u.village_ids.contains(&village.id))
        else {
            continue;
        };
        let Some(grid) = district
            .grids
            .iter()
            .find(|g| g.village_id == village.id && inspector_of(&g.id).is_some())
        else {
            continue;
        };
        let Some(inspector) = inspector_of(&grid.id) else {
            continue;
        };
        let (a, b) = (
            people[(2 * n) % people.len()],
            people[(2 * n + 1) % people.len()],
        );
        let id = uuid::Builder::from_random_bytes(rng.u128(..).to_le_bytes())
            .into_uuid()
            .to_string();
        let opened = now_ms - rng.i64(2 * 86_400_000..20 * 86_400_000);
        let details = MediationDetails {
            file_id: id.clone(),
            grid_id: grid.id.clone(),
            dispute_type: [
                DisputeType::Neighbour,
                DisputeType::Property,
                DisputeType::Family,
                DisputeType::Labour,
            ][n % 4],
            summary: [
                "楼上漏水，双方就维修费用产生争执",
                "物业费与停车位纠纷",
                "赡养老人费用分担纠纷",
                "装修工人工资拖欠纠纷",
            ][n % 4]
                .into(),
            parties: vec![
                Party {
                    name: a.name.clone(),
                    side: Side::Applicant,
                    id_number: Some(a.id_number.clone()),
                    phone: Some(a.phone.clone()),
                },
                Party {
                    name: b.name.clone(),
                    side: Side::Respondent,
                    id_number: Some(b.id_number.clone()),
                    phone: Some(b.phone.clone()),
                },
            ],
            team: Team {
                inspector: inspector.id.clone(),
                mediator: mediator.id.clone(),
                legal_adviser: None,
                judge: None,
            },
            opened_at: Rung::Grid,
            case_id: None,
        };
        let mut steps = vec![MediationStep::Session {
            at_ms: opened,
            place: format!("{}调解室", village.name),
            attendees: vec![a.name.clone(), b.name.clone()],
            notes: "双方陈述事实，调解员释法说理".into(),
        }];
        match n % 3 {
            0 => steps.push(MediationStep::Agreed {
                text: "双方自愿达成调解协议，按约定分担费用".into(),
                signatures: vec!["aa".repeat(32), "bb".repeat(32)],
                at_ms: opened + 86_400_000,
            }),
            1 => steps.push(MediationStep::Escalated {
                to: Rung::Village,
                reason: "网格内未能调解".into(),
            }),
            _ => {}
        }
        let (doc, _) = RecordDoc::create::<MediationRecord>(
            &mediation_doc_id(&id),
            &details,
            steps,
            &stamp(&mediator.id, Role::Mediator, opened, None),
            actor.clone(),
        )
        .map_err(conflict)?;
        files_made.push(doc);
    }
    let mediation_files = files_made.len();
    state.with_merger(move |m| m.import_records(files_made, "server", Vec::new()))??;
    Ok(FieldWork {
        addresses,
        visits: visit_count,
        mediation_files,
    })
}
