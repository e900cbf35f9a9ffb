//! Operators' passwords and sessions.
//!
//! Passwords are argon2id PHC strings. A session is a random cookie value (256 bits) kept
//! only as its SHA-256, with a per-session CSRF token that every form sends back; it lasts
//! [`SESSION_HOURS`] and ends at sign-out or when the password changes.
//!
//! Sign-in failures are counted per name and address, per name and per address ([`Failures`]):
//! past their limits within [`FAILURE_WINDOW_MS`] further attempts are refused before any
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
    state.web().forget_sessions();
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

/// Failed sign-ins, by the name tried from one address, by the name from anywhere, and by
/// the address: their times, ms. A name is locked from an address after [`MAX_FAILURES`]
/// failures there, and everywhere after ten times as many from all addresses (so one
/// address alone cannot lock an operator out); an address after four times as many for any
/// names. Keys are bounded (names cut to 64 characters) and so is the map.
#[derive(Debug, Default)]
pub struct Failures {
    recent: Mutex<HashMap<String, Vec<i64>>>,
}

/// Most keys kept; beyond it new keys are not added until old ones expire.
const MAX_KEYS: usize = 100_000;

impl Failures {
    fn keys(name: &str, address: &str) -> [(String, u32); 3] {
        let name: String = name.chars().take(64).collect();
        [
            (format!("pair:{address}|{name}"), MAX_FAILURES),
            (format!("name:{name}"), MAX_FAILURES * 10),
            (format!("addr:{address}"), MAX_FAILURES * 4),
        ]
    }

    /// Whether attempts for `name` from `address` are refused now (before any password is
    /// checked).
    pub(super) fn locked(&self, name: &str, address: &str, now: i64) -> bool {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        Self::keys(name, address).iter().any(|(key, limit)| {
            recent.get_mut(key).is_some_and(|times| {
                times.retain(|t| now - t < FAILURE_WINDOW_MS);
                u32::try_from(times.len()).unwrap_or(u32::MAX) >= *limit
            })
        })
    }

    /// Counts a failed attempt.
    pub(super) fn failed(&self, name: &str, address: &str, now: i64) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() >= MAX_KEYS {
            recent.retain(|_, times| times.iter().any(|t| now - t < FAILURE_WINDOW_MS));
        }
        for (key, _) in Self::keys(name, address) {
            let room = recent.len() < MAX_KEYS;
            match recent.get_mut(&key) {
                Some(times) => times.push(now),
                None if room => {
                    recent.insert(key, vec![now]);
                }
                None => {}
            }
        }
    }

    /// Forgets the failures of a name from an address after it signed in there.
    pub(super) fn succeeded(&self, name: &str, address: &str) {
        let [(pair, _), ..] = Self::keys(name, address);
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&pair);
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
    if failures.locked(name, address, now) {
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
            failures.succeeded(name, address);
            Ok(SignIn::Ok(open_session(state, &user.id)?))
        }
        _ => {
            failures.failed(name, address, now);
            Ok(SignIn::Refused)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_locks_from_one_address_first_and_from_everywhere_only_after_many() {
        let f = Failures::default();
        for _ in 0..MAX_FAILURES {
            assert!(!f.locked("op-01", "10.0.0.1", 0));
            f.failed("op-01", "10.0.0.1", 0);
        }
        assert!(f.locked("op-01", "10.0.0.1", 1));
        // The operator at their own desk is not locked out by someone else's guesses.
        assert!(!f.locked("op-01", "10.0.0.2", 1));
        // Nor after the window.
        assert!(!f.locked("op-01", "10.0.0.1", FAILURE_WINDOW_MS + 1));
        // Guesses from many addresses lock the name everywhere.
        for i in 0..MAX_FAILURES * 10 {
            f.failed("op-02", &format!("10.1.{}.{}", i / 200, i % 200), 0);
        }
        assert!(f.locked("op-02", "10.0.0.9", 1));
        // One address guessing many names is stopped too.
        for i in 0..MAX_FAILURES * 4 {
            f.failed(&format!("user-{i}"), "10.2.0.1", 0);
        }
        assert!(f.locked("someone-else", "10.2.0.1", 1));
        // A success from an address forgets that address's failures for the name.
        f.failed("op-03", "10.3.0.1", 0);
        f.succeeded("op-03", "10.3.0.1");
        assert_eq!(
            f.recent
                .lock()
                .unwrap()
                .get("pair:10.3.0.1|op-03")
                .map(Vec::len),
            None
        );
    }

    #[test]
    fn long_names_and_many_keys_stay_bounded() {
        let f = Failures::default();
        let long = "x".repeat(16 << 10);
        f.failed(&long, "10.0.0.1", 0);
        assert!(f.recent.lock().unwrap().keys().all(|k| k.len() < 200));
        // Checking never adds keys.
        assert!(!f.locked("never-tried", "10.9.9.9", 0));
        assert_eq!(f.recent.lock().unwrap().len(), 3);
    }
}
