//! Fault injection for tests and benchmarks: a loopback TCP proxy that cuts connections.
//!
//! [`CuttingProxy`] listens on 127.0.0.1 (never another address), forwards each connection to
//! a target on 127.0.0.1, counts the bytes clients send, and, each time that count crosses the
//! next of its planned cut points, forwards the bytes up to the point and then closes both
//! sides of the connection — a phone losing its signal in the middle of a request. It stops
//! when dropped (its threads poll a stop flag, so nothing outlives the test).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// See the module docs.
#[derive(Debug)]
pub struct CuttingProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    target: SocketAddr,
    /// Client→server bytes forwarded, over all connections.
    up: AtomicU64,
    /// Cut points still ahead, ascending.
    cuts: Mutex<Vec<u64>>,
    cuts_done: AtomicU64,
    stop: AtomicBool,
}

impl CuttingProxy {
    /// A proxy to `target` (which must be on 127.0.0.1) cutting at these offsets of the
    /// client→server byte stream.
    pub fn start(target: SocketAddr, mut cuts: Vec<u64>) -> std::io::Result<CuttingProxy> {
        if !target.ip().is_loopback() {
            return Err(std::io::Error::other("the proxy only forwards to loopback"));
        }
        cuts.sort_unstable();
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            target,
            up: AtomicU64::new(0),
            cuts: Mutex::new(cuts),
            cuts_done: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let accept_shared = shared.clone();
        let accept = std::thread::Builder::new()
            .name("cutting-proxy".into())
            .spawn(move || accept_loop(&listener, &accept_shared))?;
        Ok(CuttingProxy {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Client→server bytes forwarded so far (request lines, headers and bodies).
    pub fn bytes_up(&self) -> u64 {
        self.shared.up.load(Ordering::SeqCst)
    }

    /// Connections cut so far.
    pub fn cuts_done(&self) -> u64 {
        self.shared.cuts_done.load(Ordering::SeqCst)
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                let Ok(server) = TcpStream::connect(shared.target) else {
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let conn = Connection {
                    client,
                    server,
                    shared: shared.clone(),
                };
                let _ = std::thread::Builder::new()
                    .name("cutting-proxy-conn".into())
                    .spawn(move || conn.run());
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

struct Connection {
    client: TcpStream,
    server: TcpStream,
    shared: Arc<Shared>,
}

impl Connection {
    fn run(self) {
        let timeout = Some(Duration::from_millis(50));
        let (Ok(mut client_r), Ok(mut server_w), Ok(mut server_r), Ok(mut client_w)) = (
            self.client.try_clone(),
            self.server.try_clone(),
            self.server.try_clone(),
            self.client.try_clone(),
        ) else {
            return;
        };
        let _ = client_r.set_read_timeout(timeout);
        let _ = server_r.set_read_timeout(timeout);
        let closed = Arc::new(AtomicBool::new(false));
        let shared = self.shared.clone();
        let down_closed = closed.clone();
        // Server → client: copied as is.
        let down = std::thread::spawn(move || {
            let mut buf = [0u8; 16 << 10];
            while !down_closed.load(Ordering::SeqCst) && !shared.stop.load(Ordering::SeqCst) {
                match server_r.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if client_w.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    Err(e) if is_timeout(&e) => {}
                    Err(_) => break,
                }
            }
            down_closed.store(true, Ordering::SeqCst);
        });
        // Client → server: counted, and cut at the planned points.
        let mut buf = [0u8; 16 << 10];
        while !closed.load(Ordering::SeqCst) && !self.shared.stop.load(Ordering::SeqCst) {
            match client_r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let (forward, cut) = self.plan(n as u64);
                    let forward = usize::try_from(forward).unwrap_or(n);
                    if server_w.write_all(&buf[..forward]).is_err() {
                        break;
                    }
                    if cut {
                        self.shared.cuts_done.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                }
                Err(e) if is_timeout(&e) => {}
                Err(_) => break,
            }
        }
        closed.store(true, Ordering::SeqCst);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
        let _ = down.join();
    }

    /// How many of `n` new bytes to forward, and whether to cut after them.
    fn plan(&self, n: u64) -> (u64, bool) {
        let mut cuts = self.shared.cuts.lock().unwrap_or_else(|p| p.into_inner());
        let before = self.shared.up.load(Ordering::SeqCst);
        match cuts.first().copied() {
            Some(at) if at < before + n => {
                cuts.remove(0);
                let forward = at.saturating_sub(before);
                self.shared.up.fetch_add(forward, Ordering::SeqCst);
                (forward, true)
            }
            _ => {
                self.shared.up.fetch_add(n, Ordering::SeqCst);
                (n, false)
            }
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}
