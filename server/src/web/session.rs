//! Operators' passwords and sessions.
//!
//! Passwords are argon2id PHC strings. A session is a random cookie value (256 bits) kept
//! only as its SHA-256, with a per-session CSRF token that every form sends back; it lasts
//! [`SESSION_HOURS`] and ends at sign-out or when the password changes.
//!
//! Sign-in failures are counted per name and address, per name and per address ([`Failures`]):
//! past their limits within [`FAILURE_WINDOW_MS`] further attempts are refused before any
//! password is checked. An attempt is counted as a failure *before* its password is checked
//! and forgotten only when it succeeds, so forty simultaneous guesses are as limited as forty
//! one after another; and at most [`MAX_PASSWORD_CHECKS`] argon2 checks run at once (each
//! holds about 19 MiB), the others wait their turn or are told the server is busy. Unknown
//! names are hashed against a fixed dummy hash, so the answer and its timing do not tell which
//! names exist.

use crate::identity::{hash_secret, new_token};
use crate::state::AppState;
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
/// Password checks (argon2, about 19 MiB and tens of milliseconds each) run at once.
pub(super) const MAX_PASSWORD_CHECKS: usize = 4;
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
    let now = crate::state::now_ms();
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
        .web_session(&hash_secret(token), crate::state::now_ms())
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
    fn recent(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<i64>>> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn keys(name: &str, address: &str) -> [(String, u32); 3] {
        let name: String = name.chars().take(64).collect();
        [
            (format!("pair:{address}|{name}"), MAX_FAILURES),
            (format!("name:{name}"), MAX_FAILURES * 10),
            (format!("addr:{address}"), MAX_FAILURES * 4),
        ]
    }

    /// Takes an attempt for `name` from `address`: `false` when they are locked out now
    /// (nothing is counted, no password need be checked); otherwise the attempt is counted as
    /// a failure at once, under the same lock, and stays counted unless it
    /// [`succeeded`](Self::succeeded) or is [`withdrawn`](Self::withdraw).
    pub(super) fn attempt(&self, name: &str, address: &str, now: i64) -> bool {
        let mut recent = self.recent();
        let keys = Self::keys(name, address);
        let locked = keys.iter().any(|(key, limit)| {
            recent.get_mut(key).is_some_and(|times| {
                times.retain(|t| now - t < FAILURE_WINDOW_MS);
                u32::try_from(times.len()).unwrap_or(u32::MAX) >= *limit
            })
        });
        if locked {
            return false;
        }
        if recent.len() >= MAX_KEYS {
            recent.retain(|_, times| times.iter().any(|t| now - t < FAILURE_WINDOW_MS));
        }
        for (key, _) in keys {
            let room = recent.len() < MAX_KEYS;
            match recent.get_mut(&key) {
                Some(times) => times.push(now),
                None if room => {
                    recent.insert(key, vec![now]);
                }
                None => {}
            }
        }
        true
    }

    /// The attempt taken at `at` signed in: the name's failures from that address are
    /// forgotten, and the attempt no longer counts against the name or the address.
    pub(super) fn succeeded(&self, name: &str, address: &str, at: i64) {
        self.withdraw(name, address, at);
        let [(pair, _), ..] = Self::keys(name, address);
        self.recent().remove(&pair);
    }

    /// The attempt taken at `at` does not count (it was never checked: the server was busy).
    pub(super) fn withdraw(&self, name: &str, address: &str, at: i64) {
        let mut recent = self.recent();
        for (key, _) in Self::keys(name, address) {
            if let Some(times) = recent.get_mut(&key) {
                if let Some(i) = times.iter().rposition(|&t| t == at) {
                    times.swap_remove(i);
                }
                if times.is_empty() {
                    recent.remove(&key);
                }
            }
        }
    }
}

/// The turns for password checks: [`MAX_PASSWORD_CHECKS`] at once. A turn is owned, so it
/// goes with the check into its blocking task: a client that hangs up does not free its turn
/// while argon2 still runs for it.
#[derive(Debug)]
pub(super) struct PasswordChecks(std::sync::Arc<tokio::sync::Semaphore>);

impl Default for PasswordChecks {
    fn default() -> Self {
        PasswordChecks(std::sync::Arc::new(tokio::sync::Semaphore::new(
            MAX_PASSWORD_CHECKS,
        )))
    }
}

impl PasswordChecks {
    /// How long a sign-in waits for its turn before the server answers that it is busy.
    pub(super) const WAIT: std::time::Duration = std::time::Duration::from_secs(5);

    /// A turn, or `None` when none came free within [`Self::WAIT`].
    pub(super) async fn turn(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        tokio::time::timeout(Self::WAIT, self.0.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
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
///
/// The attempt must have been taken ([`Failures::attempt`] at `attempt_at`): it counts as a
/// failure unless the password matches.
pub fn sign_in(
    state: &AppState,
    failures: &Failures,
    attempt_at: i64,
    name: &str,
    password: &str,
    address: &str,
) -> Result<SignIn, StoreError> {
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
            let token = open_session(state, &user.id)?;
            failures.succeeded(name, address, attempt_at);
            Ok(SignIn::Ok(token))
        }
        _ => Ok(SignIn::Refused),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_locks_from_one_address_first_and_from_everywhere_only_after_many() {
        let f = Failures::default();
        for _ in 0..MAX_FAILURES {
            assert!(f.attempt("op-01", "10.0.0.1", 0));
        }
        assert!(!f.attempt("op-01", "10.0.0.1", 1));
        // The operator at their own desk is not locked out by someone else's guesses.
        assert!(f.attempt("op-01", "10.0.0.2", 1));
        // Nor after the window.
        assert!(f.attempt("op-01", "10.0.0.1", FAILURE_WINDOW_MS + 1));
        // Guesses from many addresses lock the name everywhere.
        for i in 0..MAX_FAILURES * 10 {
            assert!(f.attempt("op-02", &format!("10.1.{}.{}", i / 200, i % 200), 0));
        }
        assert!(!f.attempt("op-02", "10.0.0.9", 1));
        // One address guessing many names is stopped too.
        for i in 0..MAX_FAILURES * 4 {
            assert!(f.attempt(&format!("user-{i}"), "10.2.0.1", 0));
        }
        assert!(!f.attempt("someone-else", "10.2.0.1", 1));
        // A success from an address forgets that address's failures for the name, and the
        // successful attempt does not count against the name or the address.
        assert!(f.attempt("op-03", "10.3.0.1", 0));
        assert!(f.attempt("op-03", "10.3.0.1", 5));
        f.succeeded("op-03", "10.3.0.1", 5);
        let recent = f.recent.lock().unwrap();
        assert_eq!(recent.get("pair:10.3.0.1|op-03"), None);
        assert_eq!(recent.get("name:op-03").map(Vec::as_slice), Some(&[0][..]));
        assert_eq!(
            recent.get("addr:10.3.0.1").map(Vec::as_slice),
            Some(&[0][..])
        );
    }

    #[test]
    fn a_refused_attempt_counts_nothing_and_a_withdrawn_one_is_forgotten() {
        let f = Failures::default();
        for _ in 0..MAX_FAILURES {
            assert!(f.attempt("op-04", "10.4.0.1", 0));
        }
        // Refused while locked: nothing more is counted (the lock does not extend itself).
        assert!(!f.attempt("op-04", "10.4.0.1", 10));
        assert_eq!(
            f.recent.lock().unwrap()["pair:10.4.0.1|op-04"].len(),
            MAX_FAILURES as usize
        );
        // An attempt the server was too busy to check does not count.
        assert!(f.attempt("op-05", "10.4.0.2", 7));
        f.withdraw("op-05", "10.4.0.2", 7);
        assert!(
            f.recent
                .lock()
                .unwrap()
                .keys()
                .all(|k| !k.contains("10.4.0.2"))
        );
    }

    #[test]
    fn long_names_and_many_keys_stay_bounded() {
        let f = Failures::default();
        let long = "x".repeat(16 << 10);
        assert!(f.attempt(&long, "10.0.0.1", 0));
        assert!(f.recent.lock().unwrap().keys().all(|k| k.len() < 200));
        assert_eq!(f.recent.lock().unwrap().len(), 3);
    }
}
