//! The Linux socket options std and tokio do not expose: `TCP_INFO`,
//! `TCP_SAVE_SYN`, `TCP_SAVED_SYN` and `TCP_MAXSEG` (tcp(7)), a `recvfrom`
//! into an initialised buffer, registering a raw socket with tokio, and the
//! packet socket's memory-mapped ring ([`packet_ring`]). The only `unsafe` in
//! the crate, kept to these calls so the rest can stay safe.
//!
//! Every function takes a borrowed fd, so the socket outlives the call; the
//! kernel writes at most the length we pass, into memory we own. [`SharedFd`]
//! lends a connection's descriptor to other tasks without duplicating it.
#![allow(unsafe_code)]

#[cfg(target_os = "linux")]
pub mod packet_ring;

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Mutex;

/// A connection's descriptor, lent to readers in other tasks (a report
/// reading `TCP_INFO` of a hanging connection, a probe's sampler) without a
/// second descriptor.
///
/// While the connection lives, only the number is held: the owner calls
/// [`SharedFd::close`] before the socket is closed, and a reader holds the
/// lock for the length of its call, so a reader sees the socket open or sees
/// nothing, never a number the kernel has since given to another connection.
/// An owner that closes while readers still hold handles may instead pass the
/// descriptor itself over ([`SharedFd::keep`]); it closes with the last handle.
#[derive(Debug)]
pub struct SharedFd(Mutex<Slot>);

#[derive(Debug)]
enum Slot {
    Lent(RawFd),
    Kept(OwnedFd),
    Closed,
}

impl SharedFd {
    /// `fd` must belong to a socket whose owner calls [`close`](Self::close)
    /// before closing it (see `server::socket`).
    pub fn new(fd: BorrowedFd<'_>) -> Self {
        Self(Mutex::new(Slot::Lent(fd.as_raw_fd())))
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the descriptor if the socket is still open.
    pub fn with<R>(&self, f: impl FnOnce(BorrowedFd<'_>) -> R) -> Option<R> {
        match &*self.slot() {
            // SAFETY: the slot holds a number only while its socket is open,
            // and the owner cannot close it while we hold the lock (`close`
            // takes it first).
            Slot::Lent(fd) => Some(f(unsafe { BorrowedFd::borrow_raw(*fd) })),
            Slot::Kept(fd) => Some(f(fd.as_fd())),
            Slot::Closed => None,
        }
    }

    /// Called by the owner just before the socket closes.
    pub fn close(&self) {
        *self.slot() = Slot::Closed;
    }

    /// The owner hands over the descriptor itself: it stays open for the
    /// remaining handles and closes with the last of them.
    pub fn keep(&self, fd: OwnedFd) {
        *self.slot() = Slot::Kept(fd);
    }
}

/// `TCP_SAVED_SYN` returns the SYN's IP and TCP headers: at most 60 + 60 bytes
/// for IPv4, 40 (+ extension headers) + 60 for IPv6.
const SAVED_SYN_MAX: usize = 512;

/// Asks the kernel to keep the SYN of every connection accepted on `listener`.
/// Registers `socket` with the runtime's reactor, which then owns it.
pub fn async_fd(socket: socket2::Socket) -> io::Result<tokio::io::unix::AsyncFd<socket2::Socket>> {
    // SAFETY: the `AsyncFd` takes the socket by value, so the descriptor it
    // registers stays open until the `AsyncFd` deregisters it on drop.
    unsafe { tokio::io::unix::AsyncFd::register(socket) }.map_err(io::Error::from)
}

/// `recvfrom` into `buf`, with who sent it (socket2 reads into
/// uninitialised memory only).
pub fn recv_from(
    socket: &socket2::Socket,
    buf: &mut [u8],
) -> io::Result<(usize, socket2::SockAddr)> {
    // SAFETY: `[u8]` and `[MaybeUninit<u8>]` have the same layout, and the
    // kernel only writes into the buffer: initialised bytes stay initialised.
    let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) };
    socket.recv_from(uninit)
}

#[cfg(target_os = "linux")]
pub fn enable_save_syn(listener: BorrowedFd<'_>) -> io::Result<()> {
    set_tcp_option(listener, libc::TCP_SAVE_SYN, 1)
}

/// Caps the MSS of connections accepted on `listener`: announced in our SYN-ACK
/// (so the client sends segments no larger) and used for what we send.
#[cfg(target_os = "linux")]
pub fn set_max_segment(listener: BorrowedFd<'_>, mss: u32) -> io::Result<()> {
    set_tcp_option(listener, libc::TCP_MAXSEG, mss as libc::c_int)
}

#[cfg(target_os = "linux")]
fn set_tcp_option(fd: BorrowedFd<'_>, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `value` lives across the call and its size is passed exactly.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads the saved SYN headers of an accepted connection (empty if none was
/// saved) into a buffer on the stack, and hands them to `read`: every
/// connection does this, and the headers are parsed, not kept. The kernel
/// hands them out once.
#[cfg(target_os = "linux")]
pub fn saved_syn<R>(conn: BorrowedFd<'_>, read: impl FnOnce(&[u8]) -> R) -> io::Result<R> {
    let mut buf = [0u8; SAVED_SYN_MAX];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: `buf` has `len` writable bytes; the kernel writes at most `len` and
    // stores the written length back into `len`.
    let rc = unsafe {
        libc::getsockopt(
            conn.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_SAVED_SYN,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(read(&buf[..(len as usize).min(SAVED_SYN_MAX)]))
}

/// The connection's `struct tcp_info`.
#[cfg(target_os = "linux")]
pub fn tcp_info(conn: BorrowedFd<'_>) -> io::Result<libc::tcp_info> {
    // SAFETY: tcp_info is plain old data; all-zero is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` has `len` writable bytes; a kernel older than libc's struct
    // fills a prefix and leaves the rest zero.
    let rc = unsafe {
        libc::getsockopt(
            conn.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(info)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The soft and hard limits on open descriptors.
fn nofile() -> io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit the kernel fills in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        Ok(limit)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The soft limit on open descriptors (0 if unknown), for log lines.
pub fn descriptor_limit() -> u64 {
    nofile().map_or(0, |l| l.rlim_cur)
}

/// Raises the soft limit on open descriptors to the hard limit: each
/// connection takes one, and the usual soft default (1,024) is far below what
/// the listeners hold. Returns the limit before and after.
pub fn raise_descriptor_limit() -> io::Result<(u64, u64)> {
    let before = nofile()?;
    if before.rlim_cur >= before.rlim_max {
        return Ok((before.rlim_cur as u64, before.rlim_cur as u64));
    }
    let raised = libc::rlimit {
        rlim_cur: before.rlim_max,
        rlim_max: before.rlim_max,
    };
    // SAFETY: `raised` is a valid rlimit, read by the kernel only.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((before.rlim_cur as u64, raised.rlim_cur as u64))
}

#[cfg(not(target_os = "linux"))]
pub fn enable_save_syn(_: BorrowedFd<'_>) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "TCP_SAVE_SYN is Linux-only",
    ))
}

#[cfg(not(target_os = "linux"))]
pub fn set_max_segment(_: BorrowedFd<'_>, _: u32) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "TCP_MAXSEG on listeners is Linux-only here",
    ))
}

#[cfg(not(target_os = "linux"))]
pub fn saved_syn<R>(_: BorrowedFd<'_>, _: impl FnOnce(&[u8]) -> R) -> io::Result<R> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "TCP_SAVED_SYN is Linux-only",
    ))
}
