//! What a connection is doing, for its deadlines and for choosing whom to shed:
//! requests started and in flight, since when it has been idle, since when a
//! request head has been arriving, since when a write has made no progress.
//!
//! Written by [`Watched`] (the I/O under HTTP) and by the per-request hooks in
//! `http`; read by the connection's watchdog ([`Activity::check`]) and by
//! `admission`. Plain atomics: the writers are the connection's own task and
//! its request tasks, the readers anyone, and a value a moment stale is fine.
//!
//! Idle is measured between requests, never from bytes: an HTTP/2 peer that
//! answers our PINGs, or sends its own, is still idle.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Marks an unset timestamp.
const NONE: u32 = u32::MAX;

/// The preface every HTTP/2 connection opens with (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// How long each phase of a connection may take. Defaults are far beyond what
/// a browser or curl ever needs; see `Config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// From the start of HTTP (accept, or the end of the TLS handshake) to the
    /// first byte of a request.
    pub first_byte: Duration,
    /// From a request head's first byte to its end (HTTP/1).
    pub head: Duration,
    /// From a request head to the end of its body.
    pub body: Duration,
    /// A write (or flush) that makes no progress for this long.
    pub write_stall: Duration,
    /// Between requests (keep-alive, HTTP/2 with no stream open).
    pub idle: Duration,
}

/// Why a connection was ended by its watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overdue {
    FirstByte,
    Head,
    WriteStall,
    Idle,
}

impl Overdue {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FirstByte => "no request began in time",
            Self::Head => "request head not received in time",
            Self::WriteStall => "a write made no progress in time",
            Self::Idle => "idle between requests too long",
        }
    }
}

/// What admission sees: a connection that has not sent a request yet, one
/// between requests, or one serving a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    PreRequest,
    Idle,
    Busy,
}

/// One connection's activity. Times are milliseconds since `born`.
#[derive(Debug)]
pub struct Activity {
    born: Instant,
    requests: AtomicU32,
    in_flight: AtomicU32,
    /// When HTTP began, or the last request ended.
    idle_since: AtomicU32,
    /// First byte read while no request was in flight (HTTP/1 only).
    head_since: AtomicU32,
    write_stuck_since: AtomicU32,
    h2: AtomicBool,
    shed: Notify,
}

impl Activity {
    pub fn new(born: Instant) -> Self {
        Self {
            born,
            requests: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU32::new(0),
            head_since: AtomicU32::new(NONE),
            write_stuck_since: AtomicU32::new(NONE),
            h2: AtomicBool::new(false),
            shed: Notify::new(),
        }
    }

    fn ms(&self, at: Instant) -> u32 {
        // Saturates below NONE: a connection that old is past every deadline.
        at.saturating_duration_since(self.born)
            .as_millis()
            .min(u128::from(NONE - 1)) as u32
    }

    fn at(&self, ms: u32) -> Instant {
        self.born + Duration::from_millis(u64::from(ms))
    }

    pub fn phase(&self) -> Phase {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            Phase::Busy
        } else if self.requests.load(Ordering::Relaxed) == 0 {
            Phase::PreRequest
        } else {
            Phase::Idle
        }
    }

    /// HTTP begins now (after the TLS handshake, on the HTTPS port); `h2` when
    /// ALPN chose HTTP/2.
    pub fn http_begins(&self, h2: bool) {
        self.idle_since
            .store(self.ms(Instant::now()), Ordering::Relaxed);
        if h2 {
            self.h2.store(true, Ordering::Relaxed);
        }
    }

    /// A request's head has arrived; the guard ends it when its response is done.
    pub fn begin_request(self: &std::sync::Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(NONE, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Asks the connection to end (it was chosen to make room).
    pub fn shed(&self) {
        self.shed.notify_one();
    }

    /// Completes when [`shed`](Self::shed) was called.
    pub async fn shed_requested(&self) {
        self.shed.notified().await;
    }

    fn read_some(&self, first_bytes: &[u8], first_read: bool) {
        if first_read && first_bytes.starts_with(H2_PREFACE) {
            self.h2.store(true, Ordering::Relaxed);
        }
        if self.in_flight.load(Ordering::Relaxed) == 0
            && !self.h2.load(Ordering::Relaxed)
            && self.head_since.load(Ordering::Relaxed) == NONE
        {
            self.head_since
                .store(self.ms(Instant::now()), Ordering::Relaxed);
        }
    }

    fn write_pending(&self) {
        if self.write_stuck_since.load(Ordering::Relaxed) == NONE {
            self.write_stuck_since
                .store(self.ms(Instant::now()), Ordering::Relaxed);
        }
    }

    fn write_progressed(&self) {
        if self.write_stuck_since.load(Ordering::Relaxed) != NONE {
            self.write_stuck_since.store(NONE, Ordering::Relaxed);
        }
    }

    /// The deadline that applies now, and what passing it means; `None` while a
    /// request is being served and every write progresses.
    fn deadline(&self, d: &Deadlines) -> Option<(Instant, Overdue)> {
        let stuck = self.write_stuck_since.load(Ordering::Relaxed);
        let write = (stuck != NONE).then(|| (self.at(stuck) + d.write_stall, Overdue::WriteStall));
        let waiting = if self.in_flight.load(Ordering::Relaxed) > 0 {
            None
        } else {
            let head = self.head_since.load(Ordering::Relaxed);
            let idle = self.at(self.idle_since.load(Ordering::Relaxed));
            Some(if head != NONE {
                (self.at(head) + d.head, Overdue::Head)
            } else if self.requests.load(Ordering::Relaxed) == 0 && !self.h2.load(Ordering::Relaxed)
            {
                (idle + d.first_byte, Overdue::FirstByte)
            } else {
                (idle + d.idle, Overdue::Idle)
            })
        };
        match (write, waiting) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// At `now`: `Err` if a deadline has passed, else when to check again.
    /// With nothing due (a request in progress), checks again within half the
    /// write-stall deadline, so a write that gets stuck later is not missed
    /// by more than that.
    pub fn check(&self, now: Instant, d: &Deadlines) -> Result<Instant, Overdue> {
        match self.deadline(d) {
            Some((at, why)) if at <= now => Err(why),
            Some((at, _)) => Ok(at),
            None => Ok(now + d.write_stall / 2),
        }
    }
}

/// A request in flight; dropping it (with the response body) ends it.
#[derive(Debug)]
pub struct InFlight(std::sync::Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        if a.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            a.idle_since.store(a.ms(Instant::now()), Ordering::Relaxed);
        }
    }
}

/// The I/O under HTTP, noting reads (a head beginning) and whether writes
/// progress.
#[derive(Debug)]
pub struct Watched<IO> {
    io: IO,
    activity: std::sync::Arc<Activity>,
    read_before: bool,
}

impl<IO> Watched<IO> {
    pub fn new(io: IO, activity: std::sync::Arc<Activity>) -> Self {
        Self {
            io,
            activity,
            read_before: false,
        }
    }

    fn wrote<T>(
        &self,
        poll: Poll<io::Result<T>>,
        progressed: impl Fn(&T) -> bool,
    ) -> Poll<io::Result<T>> {
        match &poll {
            Poll::Pending => self.activity.write_pending(),
            Poll::Ready(Ok(v)) if progressed(v) => self.activity.write_progressed(),
            Poll::Ready(_) => {}
        }
        poll
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            if buf.filled().len() > before {
                let first = !self.read_before;
                self.read_before = true;
                self.activity.read_some(&buf.filled()[before..], first);
            }
        }
        poll
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.wrote(poll, |&n| n > 0)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.wrote(poll, |&n| n > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.wrote(poll, |()| true)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn deadlines() -> Deadlines {
        Deadlines {
            first_byte: Duration::from_secs(20),
            head: Duration::from_secs(20),
            body: Duration::from_secs(60),
            write_stall: Duration::from_secs(30),
            idle: Duration::from_secs(60),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_due_after_the_first_byte_deadline() {
        let a = Activity::new(Instant::now());
        a.http_begins(false);
        let d = deadlines();
        assert_eq!(
            a.check(Instant::now(), &d),
            Ok(Instant::now() + d.first_byte)
        );
        tokio::time::advance(d.first_byte).await;
        assert_eq!(a.check(Instant::now(), &d), Err(Overdue::FirstByte));
    }

    #[tokio::test(start_paused = true)]
    async fn an_h2_peer_answering_pings_is_still_idle() {
        let a = Arc::new(Activity::new(Instant::now()));
        a.http_begins(true);
        let d = deadlines();
        drop(a.begin_request());
        // PING frames are reads; they must not start a head or reset idle.
        tokio::time::advance(Duration::from_secs(30)).await;
        a.read_some(b"\0\0\x08\x06\0\0\0\0\0", false);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(a.check(Instant::now(), &d), Err(Overdue::Idle));
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_trickled_in_is_due_after_the_head_deadline() {
        let a = Arc::new(Activity::new(Instant::now()));
        a.http_begins(false);
        let d = deadlines();
        tokio::time::advance(Duration::from_secs(5)).await;
        a.read_some(b"GET / HT", true);
        tokio::time::advance(d.head).await;
        assert_eq!(a.check(Instant::now(), &d), Err(Overdue::Head));
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_connection_is_due_only_when_its_write_stops_progressing() {
        let a = Arc::new(Activity::new(Instant::now()));
        a.http_begins(false);
        let d = deadlines();
        let request = a.begin_request();
        assert_eq!(a.phase(), Phase::Busy);
        tokio::time::advance(Duration::from_secs(300)).await;
        assert!(a.check(Instant::now(), &d).is_ok());
        a.write_pending();
        tokio::time::advance(Duration::from_secs(29)).await;
        a.write_pending(); // still stuck: the clock does not restart
        assert!(a.check(Instant::now(), &d).is_ok());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(a.check(Instant::now(), &d), Err(Overdue::WriteStall));
        a.write_progressed();
        assert!(a.check(Instant::now(), &d).is_ok());
        drop(request);
        assert_eq!(a.phase(), Phase::Idle);
        assert_eq!(a.check(Instant::now(), &d), Ok(Instant::now() + d.idle));
    }
}
