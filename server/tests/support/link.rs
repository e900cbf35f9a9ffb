//! A faulty link between a phone and the server, shared by the integration tests and the chaos
//! campaigns (`examples/chaos`): for a while it drops requests or responses, delivers a request
//! twice, delays, hands back the response of an earlier request instead of this one, and holds a
//! request back to deliver it after later ones (an old push arriving last).
//!
//! Only `post` (the sync exchange and enrollment) is faulted; blob transfers go through as they
//! are (their own faults are the cutting proxy's).

use gridlink_core::sync::{Transport, TransportError};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// Every fault the link injects, by name (as logged).
pub const FAULTS: [&str; 7] = [
    "drop_request",
    "drop_response",
    "duplicate",
    "stale",
    "late",
    "delay",
    "held",
];

/// See the module docs.
pub struct Faulty {
    inner: gridlink_core::sync::HttpTransport,
    rng: Mutex<fastrand::Rng>,
    /// Faults still to inject at random (one in eight posts goes through clean regardless).
    pub faults_left: Mutex<u32>,
    previous: Mutex<Option<Vec<u8>>>,
    /// Requests held back, delivered after the next one that goes through.
    held: Mutex<VecDeque<(String, Vec<u8>)>>,
    /// What each post did, in order.
    pub log: Mutex<Vec<&'static str>>,
    /// Faults to inject first, in this order, before the random ones.
    pub script: Mutex<VecDeque<&'static str>>,
}

impl Faulty {
    /// A link over `inner` that injects up to `faults` random faults, seeded.
    pub fn new(inner: gridlink_core::sync::HttpTransport, seed: u64, faults: u32) -> Self {
        Faulty {
            inner,
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            faults_left: Mutex::new(faults),
            previous: Mutex::new(None),
            held: Mutex::new(VecDeque::new()),
            log: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
        }
    }

    /// Faults injected so far (posts that were not delivered cleanly).
    pub fn injected(&self) -> usize {
        lock(&self.log).iter().filter(|f| **f != "none").count()
    }

    /// Delivers what is still held back, in order, ignoring the answers (the link is healed).
    pub fn flush_held(&self) {
        let held: Vec<_> = lock(&self.held).drain(..).collect();
        for (path, body) in held {
            let _ = self.inner.post(&path, &body);
        }
    }

    fn next_fault(&self) -> &'static str {
        if let Some(fault) = lock(&self.script).pop_front() {
            return fault;
        }
        let mut left = lock(&self.faults_left);
        let roll = usize::from(lock(&self.rng).u8(0..=FAULTS.len() as u8));
        if *left == 0 || roll == 0 {
            "none"
        } else {
            *left -= 1;
            FAULTS[roll - 1]
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Transport for Faulty {
    fn get(&self, path: &str) -> Result<Vec<u8>, TransportError> {
        self.inner.get(path)
    }

    fn put(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.inner.put(path, body)
    }

    fn post(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, TransportError> {
        let fault = self.next_fault();
        lock(&self.log).push(fault);
        let unreachable = || TransportError::Unreachable(format!("injected {fault}"));
        let out = match fault {
            "drop_request" => return Err(unreachable()),
            "drop_response" => {
                let _ = self.inner.post(path, body)?;
                return Err(unreachable());
            }
            "duplicate" => {
                let _ = self.inner.post(path, body);
                self.inner.post(path, body)?
            }
            "stale" => {
                let fresh = self.inner.post(path, body)?;
                match lock(&self.previous).replace(fresh.clone()) {
                    Some(old) => return Ok(old),
                    None => fresh,
                }
            }
            // The answer to an earlier request arrives instead, and this request is lost.
            "late" => match lock(&self.previous).clone() {
                Some(old) => return Ok(old),
                None => return Err(unreachable()),
            },
            "delay" => {
                std::thread::sleep(Duration::from_millis(lock(&self.rng).u64(1..30)));
                self.inner.post(path, body)?
            }
            // Lost for now; it reaches the server after a later request.
            "held" => {
                lock(&self.held).push_back((path.to_owned(), body.to_vec()));
                return Err(unreachable());
            }
            _ => self.inner.post(path, body)?,
        };
        self.flush_held();
        *lock(&self.previous) = Some(out.clone());
        Ok(out)
    }
}
