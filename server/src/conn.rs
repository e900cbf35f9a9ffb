//! What one client may hold of the server's connections.
//!
//! [`Capped`] wraps the TCP listener: at most [`ConnLimits::per_address`] open connections per
//! client address (a connection over it is closed at once, before any byte is read), and every
//! connection is closed when a read waits longer than [`ConnLimits::idle`] — a client holding
//! connections open by sending nothing, or nothing more, does not keep them. Together with the
//! body time-out of the sync endpoint, a slow or silent client holds a bounded number of
//! connections for a bounded time.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// The limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Open connections one client address may hold.
    pub per_address: usize,
    /// How long a read may wait for a byte before the connection is closed.
    pub idle: Duration,
    /// How long a client may take to send a request's headers (a byte at a time or not):
    /// past it the connection is closed (see [`crate::serve`]).
    pub header_deadline: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            // A phone holds one or two; a command centre's browser six; a hotline gateway or a
            // district's NAT more.
            per_address: 256,
            idle: Duration::from_secs(120),
            // Headers are a few hundred bytes: seconds even on a weak 2G link.
            header_deadline: Duration::from_secs(20),
        }
    }
}

/// Connections the kernel may queue before the server accepts them. A flood of connections
/// (each closed at once when over its address's cap) fills tokio's default queue of 1,024,
/// and then every other client's connection attempt is dropped and retried a second later;
/// the kernel clamps this to `net.core.somaxconn` (4,096 on current Linux).
pub const ACCEPT_BACKLOG: u32 = 4_096;

/// Binds a listener for [`crate::serve`], with [`ACCEPT_BACKLOG`].
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // A restarted server binds again at once, while the old connections wait out TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

type Counts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// The listener. See the module docs.
#[derive(Debug)]
pub struct Capped {
    inner: TcpListener,
    limits: ConnLimits,
    open: Counts,
}

impl Capped {
    /// Wraps a bound listener.
    pub fn new(inner: TcpListener, limits: ConnLimits) -> Capped {
        Capped {
            inner,
            limits,
            open: Arc::default(),
        }
    }
}

impl axum::serve::Listener for Capped {
    type Io = CappedIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (CappedIo, SocketAddr) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, as axum does.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let ip = addr.ip();
            {
                let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
                let count = open.entry(ip).or_insert(0);
                if *count >= self.limits.per_address {
                    tracing::warn!(%ip, "connection refused: too many from this address");
                    drop(open);
                    drop(stream);
                    continue;
                }
                *count += 1;
            }
            let _ = stream.set_nodelay(true);
            let io = CappedIo {
                stream,
                idle: self.limits.idle,
                timer: Box::pin(tokio::time::sleep(self.limits.idle)),
                slot: Slot {
                    ip,
                    open: self.open.clone(),
                },
            };
            return (io, addr);
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// Gives the connection's place back when the connection ends.
#[derive(Debug)]
struct Slot {
    ip: IpAddr,
    open: Counts,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// One accepted connection.
#[derive(Debug)]
pub struct CappedIo {
    stream: TcpStream,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    slot: Slot,
}

impl AsyncRead for CappedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                let deadline = Instant::now() + this.idle;
                this.timer.as_mut().reset(deadline);
                Poll::Ready(result)
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no byte from {} in {} s", this.slot.ip, this.idle.as_secs()),
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for CappedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn one_address_holds_at_most_its_connections_and_a_silent_one_is_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut capped = Capped::new(
            listener,
            ConnLimits {
                per_address: 2,
                idle: Duration::from_millis(200),
                ..ConnLimits::default()
            },
        );
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(TcpStream::connect(addr).await.unwrap());
        }
        let (mut first, _) = capped.accept().await;
        let (second, _) = capped.accept().await;
        // The third is closed unread; with one of the two gone, a fourth is taken.
        let fourth = {
            let mut third = clients.pop().unwrap();
            let mut byte = [0u8; 1];
            let accepting = tokio::spawn(async move {
                let accepted = capped.accept().await;
                (capped, accepted)
            });
            let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut byte))
                .await
                .expect("the third connection is closed at once");
            assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
            drop(second);
            clients.push(TcpStream::connect(addr).await.unwrap());
            let (_, (io, _)) = tokio::time::timeout(Duration::from_secs(5), accepting)
                .await
                .expect("a fourth is accepted once a place is free")
                .unwrap();
            io
        };
        drop(fourth);
        // A connection that sends nothing is closed after the idle time.
        let mut buf = [0u8; 8];
        let err = tokio::time::timeout(Duration::from_secs(5), first.read(&mut buf))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
