//! Operators' passwords and sessions.
//!
//! Passwords are argon2id PHC strings. A session is a random cookie value (256 bits) kept
//! only as its SHA-256, with a per-session CSRF token that every form sends back; it lasts
//! [`SESSION_HOURS`] and ends at sign-out or when the password changes.
//!
//! Sign-in failures are counted per submitted name and per client address: after
//! [`MAX_FAILURES`] within [`FAILURE_WINDOW_MS`] further attempts are refused before any
//! password is checked. Unknown names are hashed against a fixed dummy hash, so the answer
//! and its timing do not tell which names exist.

use crate::AppState;
use crate::identity::{hash_secret, new_token};
use crate::store::{StoreError, User, WebSession};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::collections::HashMap;
use std::sync::Mutex;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "gridlink_session";
/// How long a session lasts.
pub(super) const SESSION_HOURS: i64 = 12;
/// Failed sign-ins allowed per name and per address within the window.
pub const MAX_FAILURES: u32 = 5;
/// The window of [`MAX_FAILURES`], ms.
pub(super) const FAILURE_WINDOW_MS: i64 = 15 * 60 * 1000;
/// Shortest password accepted.
pub(super) const MIN_PASSWORD_CHARS: usize = 10;

/// Why a password could not be set.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Too short.
    #[error(
        "密码至少 {MIN_PASSWORD_CHARS} 个字符 / the password needs at least {MIN_PASSWORD_CHARS} characters"
    )]
    TooShort,
    /// The user does not exist or may not use the command centre.
    #[error("{0}")]
    User(String),
    /// Hashing failed.
    #[error("哈希失败 / hashing failed: {0}")]
    Hash(String),
    /// Storage.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether a role may use the command centre pages.
pub fn may_use_web(role: gridlink_core::case::Role) -> bool {
    role == gridlink_core::case::Role::Operator
}

fn hash_password(password: &str) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Sets an operator's web password (which signs them out everywhere).
pub fn set_password(
    state: &AppState,
    user_id: &str,
    password: &str,
    by: &str,
) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    let user = state
        .store()
        .user(user_id)?
        .ok_or_else(|| PasswordError::User(format!("没有用户 {user_id} / no user {user_id}")))?;
    if !may_use_web(user.role) {
        return Err(PasswordError::User(format!(
            "{user_id} 是{}，只有指挥中心人员使用网页端 / only command-centre operators use the web pages",
            user.role.label_zh()
        )));
    }
    let hash = hash_password(password)?;
    state.store().set_web_password(user_id, &hash, by)?;
    Ok(())
}

/// Opens a session for a user and returns the cookie value.
pub fn open_session(state: &AppState, user_id: &str) -> Result<String, StoreError> {
    let token = new_token().map_err(StoreError::Database)?;
    let csrf = new_token().map_err(StoreError::Database)?;
    let now = crate::now_ms();
    state.store().add_web_session(&WebSession {
        token_hash: hash_secret(&token),
        user_id: user_id.to_owned(),
        csrf,
        created_at: now,
        expires_at: now + SESSION_HOURS * 3_600_000,
    })?;
    Ok(token)
}

/// The live session a cookie value belongs to, with its user.
pub(super) fn session(
    state: &AppState,
    token: &str,
) -> Result<Option<(WebSession, User)>, StoreError> {
    if token.is_empty() || token.len() > 128 {
        return Ok(None);
    }
    state
        .store()
        .web_session(&hash_secret(token), crate::now_ms())
}

/// Constant-time comparison of two tokens.
pub(super) fn same_token(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The outcome of a sign-in attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// The cookie value of the new session.
    Ok(String),
    /// Wrong name or password (one answer for both).
    Refused,
    /// Too many failures for this name or address: try again later.
    Locked,
}

/// Failed sign-ins per key (`name:…`, `addr:…`): their times, ms.
#[derive(Debug, Default)]
pub struct Failures {
    recent: Mutex<HashMap<String, Vec<i64>>>,
}

impl Failures {
    fn count(&self, key: &str, now: i64) -> u32 {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let times = recent.entry(key.to_owned()).or_default();
        times.retain(|t| now - t < FAILURE_WINDOW_MS);
        u32::try_from(times.len()).unwrap_or(u32::MAX)
    }

    fn add(&self, key: &str, now: i64) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        // Keep the map bounded: forget keys whose failures have all expired.
        if recent.len() > 100_000 {
            recent.retain(|_, times| times.iter().any(|t| now - t < FAILURE_WINDOW_MS));
        }
        recent.entry(key.to_owned()).or_default().push(now);
    }

    fn clear(&self, key: &str) {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// A PHC string no password matches, verified for unknown names so they cost the same time.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::encode_b64(b"gridlink-dummy!!").unwrap_or_else(|_| {
            SaltString::from_b64("Z3JpZGxpbmtkdW1teQ").unwrap_or_else(|_| unreachable!())
        });
        Argon2::default()
            .hash_password(b"no password matches this one", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Checks a name and password (blocking: argon2 takes tens of milliseconds) and opens a
/// session when they match.
pub fn sign_in(
    state: &AppState,
    failures: &Failures,
    name: &str,
    password: &str,
    address: &str,
) -> Result<SignIn, StoreError> {
    let now = crate::now_ms();
    let (by_name, by_address) = (format!("name:{name}"), format!("addr:{address}"));
    if failures.count(&by_name, now) >= MAX_FAILURES
        || failures.count(&by_address, now) >= MAX_FAILURES * 4
    {
        return Ok(SignIn::Locked);
    }
    let user = state.store().user(name)?.filter(|u| may_use_web(u.role));
    let stored = match &user {
        Some(u) => state.store().web_password(&u.id)?,
        None => None,
    };
    let phc = stored.as_deref().unwrap_or_else(|| dummy_hash());
    let matches = PasswordHash::new(phc).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    });
    match user {
        Some(user) if matches && stored.is_some() => {
            failures.clear(&by_name);
            Ok(SignIn::Ok(open_session(state, &user.id)?))
        }
        _ => {
            failures.add(&by_name, now);
            failures.add(&by_address, now);
            Ok(SignIn::Refused)
        }
    }
}
