//! Capturing a ClientHello while watching for the black-hole signature: when
//! its later segments sit out of order and nothing new has arrived for a
//! while, we send the client our own ICMP "fragmentation needed" (see
//! `crate::icmp`) and note what happened next.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::Shared;
use crate::attempt::IcmpProbe;
use crate::capture::{self, CaptureEnd, HelloCapture};
use crate::diagnose::IpVersion;
use crate::inflight::Registration;
use crate::tcp::{SynInfo, TcpHandle};

/// From accept, when we start looking for the signature, and how often.
const LOOK_AFTER: Duration = Duration::from_millis(1000);
const LOOK_EVERY: Duration = Duration::from_millis(500);
/// The client's tail must have been quiet this long: its first segment has
/// been resent at least once (Linux's first retransmission is at 200 ms+).
const QUIET_MS: u32 = 500;

/// What we did, for [`IcmpProbe`] once capture has ended.
enum Sent {
    At { ms: f64, held: u32 },
    Not(String),
}

/// The connection whose ClientHello is being read.
#[derive(Debug, Clone, Copy)]
pub(super) struct Connection<'a> {
    pub accepted: Instant,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub handle: Option<&'a TcpHandle>,
    pub syn: Option<&'a SynInfo>,
}

/// Reads the ClientHello as `capture::read_client_hello` does, sending our
/// ICMP once if it gets stuck; returns the capture and the test's result.
pub(super) async fn capture_hello(
    stream: &mut super::socket::Socket,
    conn: Connection<'_>,
    shared: &Shared,
    pending: &Registration<'_>,
) -> (HelloCapture, Option<IcmpProbe>) {
    let capture = capture::read_client_hello(
        stream,
        conn.accepted,
        shared.config.hello_timeout,
        |received, read, expected| pending.pending().set_progress(received, read, expected),
    );
    let Some(handle) = conn.handle else {
        return (capture.await, None);
    };
    tokio::pin!(capture);
    // A plain timer in this task's own state, re-armed: no allocation, and
    // nothing at all happens for a hello that arrives within the first second.
    let look = tokio::time::sleep_until(conn.accepted + LOOK_AFTER);
    tokio::pin!(look);
    let mut sent: Option<Sent> = None;
    let capture = loop {
        tokio::select! {
            // The capture first: a hello already there when the connection
            // is first polled then ends it before the look's timer is ever
            // registered (registering one can wake a parked worker).
            biased;
            done = &mut capture => break done,
            () = look.as_mut(), if sent.is_none() => {
                look.as_mut().reset(Instant::now() + LOOK_EVERY);
                sent = look_and_send(&conn, handle, shared);
                if let Some(Sent::At { ms, held }) = &sent {
                    // Reports read it while the hello still hangs.
                    pending.pending().set_icmp(IcmpProbe::NoChange {
                        message: IpVersion::of(conn.peer.ip()).too_big_message().to_owned(),
                        mtu: shared.state.icmp.mtu(),
                        sent_at_ms: *ms,
                        waited_ms: 0.0,
                        held_segments: *held,
                    });
                }
            }
        }
    };
    let probe = sent.map(|sent| outcome(sent, &capture, conn.peer, shared));
    if let Some(probe) = &probe {
        pending.pending().set_icmp(probe.clone());
    }
    (capture, probe)
}

/// Sends when the signature is there; `None` to look again later.
fn look_and_send(conn: &Connection<'_>, handle: &TcpHandle, shared: &Shared) -> Option<Sent> {
    let (peer, local, accepted, syn) = (conn.peer, conn.local, conn.accepted, conn.syn);
    let info = handle.info()?;
    if info.rcv_ooopack == 0 || info.last_data_recv_ms < QUIET_MS {
        return None;
    }
    let at_ms = capture::ms(accepted.elapsed());
    match shared
        .state
        .icmp
        .send(peer, local, syn, info.bytes_received)
    {
        Ok(sequence) => {
            tracing::info!(
                target: "tlsdiag::icmp",
                %peer, sequence, mtu = shared.state.icmp.mtu(), held = info.rcv_ooopack,
                "sent our own fragmentation-needed toward a stuck ClientHello"
            );
            Some(Sent::At {
                ms: at_ms,
                held: info.rcv_ooopack,
            })
        }
        Err(err) => Some(Sent::Not(err.to_string())),
    }
}

fn outcome(sent: Sent, capture: &HelloCapture, peer: SocketAddr, shared: &Shared) -> IcmpProbe {
    let message = IpVersion::of(peer.ip()).too_big_message().to_owned();
    let mtu = shared.state.icmp.mtu();
    match sent {
        Sent::Not(why) => IcmpProbe::NotSent { why },
        Sent::At { ms, held } => {
            let end_ms = capture::ms(capture.elapsed);
            match capture.end {
                CaptureEnd::Complete(_) => IcmpProbe::Reached {
                    message,
                    mtu,
                    sent_at_ms: ms,
                    complete_at_ms: end_ms,
                    held_segments: held,
                },
                _ => IcmpProbe::NoChange {
                    message,
                    mtu,
                    sent_at_ms: ms,
                    waited_ms: end_ms - ms,
                    held_segments: held,
                },
            }
        }
    }
}
