//! Abuse limits: token buckets per client address and per device, applied to every request by
//! a tower middleware ([`axum::middleware::from_fn_with_state`]) before any handler runs.
//!
//! Three buckets: every request counts against its address and, when it carries a device
//! token, against that device; registrations and enrollments count against a much smaller
//! per-address bucket. A refused request gets `429` with `Retry-After`, and nothing else
//! happens. Buckets idle for ten minutes are dropped, so memory follows the active clients.
//!
//! Behind a reverse proxy every request comes from the proxy's address: set
//! `trust_forwarded` to key addresses by the last `X-Forwarded-For` entry instead, the one the
//! proxy appends.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One bucket's rule: `burst` requests at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests refilled per minute.
    pub per_minute: u32,
    /// Bucket size.
    pub burst: u32,
}

/// The limits the server applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Every request, per client address.
    pub per_address: Rate,
    /// Every authenticated request, per device token.
    pub per_device: Rate,
    /// Registrations and enrollments, per client address.
    pub register_per_address: Rate,
    /// Key addresses by `X-Forwarded-For` (behind a trusted proxy).
    pub trust_forwarded: bool,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            // A phone uploading photos in 256 KB chunks on 4G sends a few requests a second;
            // a whole village office behind one NAT address sends more.
            per_address: Rate {
                per_minute: 3_000,
                burst: 600,
            },
            per_device: Rate {
                per_minute: 600,
                burst: 120,
            },
            // Enough for a training session of a township's inspectors behind one address;
            // far too few to guess enrollment codes.
            register_per_address: Rate {
                per_minute: 10,
                burst: 30,
            },
            trust_forwarded: false,
        }
    }
}

impl RateLimits {
    /// No limits (benchmarks, load tests).
    pub fn unlimited() -> RateLimits {
        let open = Rate {
            per_minute: u32::MAX,
            burst: u32::MAX,
        };
        RateLimits {
            per_address: open,
            per_device: open,
            register_per_address: open,
            trust_forwarded: false,
        }
    }
}

/// The buckets.
#[derive(Debug, Default)]
pub struct Limiter {
    buckets: Mutex<HashMap<(u8, String), Bucket>>,
    last_sweep: Mutex<Option<Instant>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

const IDLE: Duration = Duration::from_secs(600);

impl Limiter {
    /// Takes one token from the bucket `(class, key)`; on refusal, the seconds until one is
    /// available.
    pub fn take(&self, class: u8, key: &str, rate: Rate, now: Instant) -> Result<(), u64> {
        if rate.per_minute == u32::MAX {
            return Ok(());
        }
        self.sweep(now);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let burst = f64::from(rate.burst.max(1));
        let per_s = f64::from(rate.per_minute.max(1)) / 60.0;
        let bucket = buckets.entry((class, key.to_owned())).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_s).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / per_s).ceil().max(1.0) as u64)
        }
    }

    fn sweep(&self, now: Instant) {
        let mut last = self.last_sweep.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|at| now.saturating_duration_since(at) < IDLE) {
            return;
        }
        *last = Some(now);
        drop(last);
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, b| now.saturating_duration_since(b.at) < IDLE);
    }

    /// Buckets held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The middleware: see the module docs.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limits = state.config().rate_limits;
    let now = Instant::now();
    let address = client_address(&request, limits.trust_forwarded);
    let limiter = state.limiter();
    let registering = matches!(request.uri().path(), "/v1/enroll" | "/v1/citizen/register");
    let mut verdict = limiter.take(0, &address, limits.per_address, now);
    if verdict.is_ok() && registering {
        verdict = limiter.take(1, &address, limits.register_per_address, now);
    }
    if verdict.is_ok()
        && let Some(token) = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
    {
        // Keyed by a hash, so the table never holds tokens.
        let key = crate::identity::hash_secret(token.trim());
        verdict = limiter.take(2, &key, limits.per_device, now);
    }
    match verdict {
        Ok(()) => next.run(request).await,
        Err(retry_after_s) => {
            state.metrics().rate_limited.inc();
            ApiError::RateLimited { retry_after_s }.into_response()
        }
    }
}

pub(crate) fn client_address(request: &Request, trust_forwarded: bool) -> String {
    // The rightmost entry is the one the proxy added; entries to its left are whatever the
    // client sent.
    if trust_forwarded
        && let Some(last) = request
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
    {
        return last.trim().to_owned();
    }
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let limiter = Limiter::default();
        let rate = Rate {
            per_minute: 60,
            burst: 3,
        };
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.take(0, "a", rate, t0), Ok(()));
        }
        assert_eq!(limiter.take(0, "a", rate, t0), Err(1));
        // Another key has its own bucket.
        assert_eq!(limiter.take(0, "b", rate, t0), Ok(()));
        // One second refills one token at 60 per minute.
        assert_eq!(
            limiter.take(0, "a", rate, t0 + Duration::from_secs(1)),
            Ok(())
        );
        assert!(
            limiter
                .take(0, "a", rate, t0 + Duration::from_secs(1))
                .is_err()
        );
        // Idle buckets are swept.
        assert_eq!(limiter.len(), 2);
        let later = t0 + IDLE + Duration::from_secs(1);
        assert_eq!(limiter.take(0, "c", rate, later), Ok(()));
        assert_eq!(limiter.len(), 1);
    }
}
