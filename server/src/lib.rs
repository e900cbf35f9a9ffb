//! gridlink-server: the district's sync server. It merges what phones did offline into the
//! master record (validating every push with gridlink-core's own rules), sends each device
//! what its user's grants cover, and registers devices.
//!
//! [`app`] builds the router (tests call it without a socket); [`serve`] runs it with
//! graceful shutdown. Storage is behind [`store::ServerStore`]; the merge engine is
//! [`merge::Merger`].
//!
//! Endpoints: `POST /v1/enroll`, `POST /v1/sync` (zlib-compressed CBOR, see
//! `gridlink_core::sync::wire`), photo upload and download ([`photos`]), citizen registration
//! and reports ([`citizen`]), Open311 GeoReport v2 ([`open311`]), the command centre's pages
//! ([`web`]), `GET /healthz`, `GET /metrics`. Every request passes the abuse
//! limits ([`limits`]) first.

#![forbid(unsafe_code)]

pub mod actions;
pub mod authored;
pub mod blobs;
pub mod citizen;
pub mod conn;
pub mod demo;
pub mod error;
pub mod faults;
pub mod identity;
pub mod limits;
pub mod media;
pub mod merge;
pub mod metrics;
pub mod open311;
pub mod overdue;
pub mod photos;
pub mod records;
pub mod scores;
pub mod store;
pub mod web;

pub mod http;
pub mod protocol;
pub mod state;

pub use http::{BODY_READ_TIMEOUT, MAX_ANONYMOUS_BODY_BYTES, MAX_REQUEST_BODY_BYTES};
pub use state::{AppState, SERVER_ACTOR_PREFIX, ServerConfig, now_ms};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use error::ApiError;
use gridlink_core::sync::wire;

/// An endpoint anyone may call before enrolling: its body is at most
/// [`MAX_ANONYMOUS_BODY_BYTES`], refused from the announced length before any of it is read
/// (and, for a body sent without one, as soon as it grows past the bound).
fn anonymous(
    route: axum::routing::MethodRouter<AppState>,
) -> axum::routing::MethodRouter<AppState> {
    route
        .layer::<_, std::convert::Infallible>(DefaultBodyLimit::max(MAX_ANONYMOUS_BODY_BYTES))
        .layer::<_, std::convert::Infallible>(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_ANONYMOUS_BODY_BYTES,
        ))
}

/// The router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/v1/enroll", anonymous(post(protocol::enroll)))
        .route("/v1/sync", post(protocol::sync))
        .route(
            "/v1/blobs/{hash}",
            get(photos::blob_status)
                .put(photos::blob_put)
                .layer(DefaultBodyLimit::max(wire::MAX_CHUNK_BYTES)),
        )
        .route("/v1/photos/{hash}", get(photos::photo))
        .route("/v1/photos/{hash}/thumb", get(photos::thumbnail))
        .route("/v1/citizen/register", anonymous(post(citizen::register)))
        .route(
            "/v1/citizen/reports",
            post(citizen::submit).get(citizen::mine),
        )
        .route("/v1/cases/overdue", get(overdue::list))
        .route("/v1/cases/{id}/reporter", get(citizen::reporter))
        .route("/v1/scores", get(scores::scores))
        .route("/v1/cases/{id}/events", post(actions::record))
        .route(
            "/v1/templates",
            get(records::list_templates).post(records::post_template),
        )
        .route("/v1/patrols/coverage", get(records::coverage))
        .route("/v1/grids", get(records::grid_map))
        .route(
            "/open311/v2/{file}",
            anonymous(get(open311::resource).post(open311::post_request)),
        )
        .route("/open311/v2/services/{file}", get(open311::service))
        .route("/open311/v2/requests/{file}", get(open311::request))
        .route("/open311/v2/tokens/{file}", get(open311::token))
        .merge(web::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::limit,
        ))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY_BYTES))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves `app(state)` on `listener` until `shutdown` resolves, then finishes the requests in
/// flight (a sync being merged completes and is answered) before returning. Connections are
/// HTTP/1.1 through [`conn::Capped`] (per-address cap, idle time-out), and a request's headers
/// must arrive within [`conn::ConnLimits::header_deadline`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let minutes = state.inner.config.auto_escalate_minutes;
    let escalation = (minutes > 0).then(|| {
        let state = state.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(minutes * 60));
            loop {
                every.tick().await;
                let state = state.clone();
                let run = tokio::task::spawn_blocking(move || {
                    overdue::escalate_overdue(&state, now_ms())
                })
                .await;
                if let Ok(Err(e)) = run {
                    tracing::warn!(error = %e, "automatic escalation failed");
                }
            }
        })
    });
    let limits = state.inner.config.connections;
    let mut listener = conn::Capped::new(listener, limits);
    let router = app(state);
    // HTTP/1.1 as axum::serve would, plus the header deadline it does not set.
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_deadline);
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (io, addr) = tokio::select! {
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            () = &mut shutdown => break,
        };
        // The client's address rides in each request's extensions, as axum's own
        // `into_make_service_with_connect_info` does: wrapping the router service costs an
        // `Arc` clone, where `Router::layer` would rebuild every route for every connection
        // (tens of kilobytes each, multiplied by every connection a slow client holds).
        let service = hyper_util::service::TowerToHyperService::new(
            tower_http::add_extension::AddExtension::new(
                router.clone(),
                axum::extract::ConnectInfo(addr),
            ),
        );
        let connection =
            connections.watch(http.serve_connection(hyper_util::rt::TokioIo::new(io), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %addr, "connection ended");
            }
        });
    }
    // No new connections; the requests in flight finish and are answered.
    drop(listener);
    connections.shutdown().await;
    if let Some(task) = escalation {
        task.abort();
    }
    Ok(())
}

fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::Internal("handler panicked".into()).into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(wire::ErrorBody {
            code: "not_found".into(),
            message: "没有这个地址 / no such endpoint".into(),
        }),
    )
        .into_response()
}

/// Whether this node can reach its database and its blob store: `200` with the document count,
/// or `503` naming what failed (a load balancer takes the node out until it answers again).
async fn healthz(State(state): State<AppState>) -> Response {
    let checked = tokio::task::spawn_blocking(move || {
        let docs = state.inner.store.doc_count();
        let blobs = state.inner.blobs.check();
        (docs, blobs, state.inner.blobs.is_object_storage())
    })
    .await;
    let (docs, blobs, object_storage) = match checked {
        Ok(checked) => checked,
        Err(e) => return ApiError::Internal(e.to_string()).into_response(),
    };
    let blob_kind = if object_storage { "s3" } else { "files" };
    match (docs, blobs) {
        (Ok(docs), Ok(())) => axum::Json(serde_json::json!({
            "status": "ok",
            "documents": docs,
            "database": "ok",
            "blobs": blob_kind,
        }))
        .into_response(),
        (docs, blobs) => {
            let database = docs.err().map(|e| e.to_string());
            let blob_error = blobs.err().map(|e| e.to_string());
            tracing::warn!(?database, blobs = ?blob_error, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5")],
                axum::Json(serde_json::json!({
                    "status": "unavailable",
                    "database": database.as_deref().unwrap_or("ok"),
                    "blobs": blob_error.as_deref().unwrap_or(blob_kind),
                })),
            )
                .into_response()
        }
    }
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    state.inner.metrics.set_pool(state.inner.store.pool());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.inner.metrics.render(),
    )
        .into_response()
}
