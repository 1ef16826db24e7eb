//! A packet socket (packet(7)) with a classic BPF filter and a `TPACKET_V3`
//! receive ring. The kernel copies each packet the filter accepts into memory
//! it shares with us, a block at a time, so reading costs one `poll` per block
//! rather than a system call per packet.
//!
//! The layouts below are the kernel's uapi (`linux/if_packet.h`,
//! `linux/filter.h`), stable since 3.2; they are written out here because
//! libc exports only part of them.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One classic BPF instruction (`struct sock_filter`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInstruction {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const BpfInstruction,
}

#[repr(C)]
struct TpacketReq3 {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
    retire_blk_tov: u32,
    sizeof_priv: u32,
    feature_req_word: u32,
}

/// Filled by the kernel; only `drops` is read.
#[repr(C)]
#[derive(Default)]
#[allow(dead_code)]
struct TpacketStatsV3 {
    packets: u32,
    drops: u32,
    freeze_q_cnt: u32,
}

const SOL_PACKET: libc::c_int = 263;
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_VERSION: libc::c_int = 10;
const TPACKET_V3: libc::c_int = 2;
/// Linux 4.20+: outgoing packets are not handed to this socket at all.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
const ETH_P_ALL: u16 = 0x0003;

// `struct tpacket_block_desc`: version, offset_to_priv, then `tpacket_hdr_v1`.
const BLOCK_STATUS: usize = 8;
const BLOCK_NUM_PACKETS: usize = 12;
const BLOCK_FIRST_PACKET: usize = 16;
// `struct tpacket3_hdr` (48 bytes), then `struct sockaddr_ll` at
// TPACKET_ALIGN(48) = 48.
const HDR_NEXT: usize = 0;
const HDR_SEC: usize = 4;
const HDR_NSEC: usize = 8;
const HDR_SNAPLEN: usize = 12;
const HDR_LEN: usize = 16;
const HDR_NET: usize = 26;
const HDR_AND_LL: usize = 48 + 20;

/// The ring's shape: `blocks` blocks of `block_size` bytes (a multiple of the
/// page size, and larger than the largest packet), each handed to us when
/// full or `retire_after` after its first packet.
#[derive(Debug, Clone, Copy)]
pub struct RingShape {
    pub block_size: u32,
    pub blocks: u32,
    pub retire_after: Duration,
}

impl RingShape {
    /// The memory the ring maps, in bytes.
    pub fn bytes(&self) -> usize {
        self.block_size as usize * self.blocks as usize
    }
}

/// One packet as the kernel put it in the ring, borrowed from it.
#[derive(Debug)]
pub struct RawPacket<'a> {
    pub at: SystemTime,
    /// The packet's length on the wire (`data` may be shorter: snap length).
    pub original_len: u32,
    /// From the network header on (the socket is `SOCK_DGRAM`).
    pub data: &'a [u8],
}

/// The socket and its mapped ring. One reader (a dedicated thread) owns it.
#[derive(Debug)]
pub struct PacketRing {
    fd: OwnedFd,
    map: *mut u8,
    shape: RingShape,
    next: usize,
}

// SAFETY: the mapping belongs to this value alone and is only read through
// `&mut self`; moving it to another thread moves that ownership.
unsafe impl Send for PacketRing {}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn set_option<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` lives across the call and its exact size is passed.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
}

impl PacketRing {
    /// Opens a packet socket on every interface of this network namespace
    /// (or only on `interface`, an index), filtered by `filter` from its
    /// first packet, with a ring of `shape`. `incoming_only` spares the
    /// kernel handing over what we send (loopback shows every packet
    /// arriving anyway). Needs `CAP_NET_RAW`.
    pub fn open(
        filter: &[BpfInstruction],
        shape: RingShape,
        interface: Option<u32>,
        incoming_only: bool,
    ) -> io::Result<Self> {
        // Protocol 0: the socket receives nothing until `bind`, so no packet
        // reaches it before the filter and the ring are in place.
        // SAFETY: plain system call; the descriptor is owned right after.
        let raw =
            unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        check(raw)?;
        // SAFETY: `raw` is a descriptor we just opened and nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let program = SockFprog {
            len: u16::try_from(filter.len())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "BPF program too long"))?,
            filter: filter.as_ptr(),
        };
        set_option(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &program)?;
        set_option(&fd, SOL_PACKET, PACKET_VERSION, &TPACKET_V3)?;
        if incoming_only {
            set_option(&fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &1 as &libc::c_int)?;
        }
        // Frames are variable-sized in V3; the kernel still checks that the
        // frame count matches the blocks.
        let frame_size = 2048;
        let request = TpacketReq3 {
            block_size: shape.block_size,
            block_nr: shape.blocks,
            frame_size,
            frame_nr: shape.block_size / frame_size * shape.blocks,
            retire_blk_tov: shape.retire_after.as_millis().clamp(1, 1000) as u32,
            sizeof_priv: 0,
            feature_req_word: 0,
        };
        set_option(&fd, SOL_PACKET, PACKET_RX_RING, &request)?;
        // SAFETY: maps the ring the kernel just allocated for this socket, at
        // the size it was allocated with; checked for failure below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                shape.bytes(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ring = Self {
            fd,
            map: map.cast(),
            shape,
            next: 0,
        };
        // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_protocol = ETH_P_ALL.to_be();
        // 0: every interface.
        address.sll_ifindex = interface.map_or(0, |i| i as libc::c_int);
        // SAFETY: `address` lives across the call and its size is passed.
        check(unsafe {
            libc::bind(
                ring.fd.as_raw_fd(),
                (&address as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        Ok(ring)
    }

    /// The status word of block `index`, shared with the kernel.
    fn status(&self, index: usize) -> &AtomicU32 {
        // SAFETY: the block lies inside the mapping (index < blocks), the
        // status word is 4-byte aligned (blocks are page-aligned), and the
        // kernel only ever writes it as a whole u32.
        unsafe {
            &*(self
                .map
                .add(index * self.shape.block_size as usize + BLOCK_STATUS)
                .cast::<AtomicU32>())
        }
    }

    /// The next block is ours to read.
    pub fn ready(&self) -> bool {
        self.status(self.next).load(Ordering::Acquire) & TP_STATUS_USER != 0
    }

    /// Waits up to `timeout` for the kernel to hand over the next block;
    /// whether it has.
    pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
        if self.ready() {
            return Ok(true);
        }
        let mut poll = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN | libc::POLLERR,
            revents: 0,
        };
        let millis = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd, counted as one.
        if unsafe { libc::poll(&mut poll, 1, millis) } < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
        Ok(self.ready())
    }

    /// Passes each packet of the next block to `each` and gives the block
    /// back to the kernel. Returns how many packets it held (0 when the
    /// kernel has not handed it over yet).
    pub fn take(&mut self, mut each: impl FnMut(RawPacket<'_>)) -> usize {
        if !self.ready() {
            return 0;
        }
        let index = self.next;
        let size = self.shape.block_size as usize;
        // SAFETY: the block is ours until we set its status back to
        // TP_STATUS_KERNEL below: the kernel does not write it meanwhile.
        let block = unsafe { std::slice::from_raw_parts(self.map.add(index * size), size) };
        let count = read_u32(block, BLOCK_NUM_PACKETS) as usize;
        let mut offset = read_u32(block, BLOCK_FIRST_PACKET) as usize;
        for _ in 0..count {
            let Some(header) = block.get(offset..offset + HDR_AND_LL) else {
                break;
            };
            let net = offset + usize::from(read_u16(header, HDR_NET));
            let snaplen = read_u32(header, HDR_SNAPLEN) as usize;
            if let Some(data) = block.get(net..net + snaplen) {
                let at = UNIX_EPOCH
                    + Duration::new(
                        u64::from(read_u32(header, HDR_SEC)),
                        read_u32(header, HDR_NSEC).min(999_999_999),
                    );
                each(RawPacket {
                    at,
                    original_len: read_u32(header, HDR_LEN),
                    data,
                });
            }
            let next = read_u32(header, HDR_NEXT) as usize;
            if next == 0 {
                break;
            }
            offset += next;
        }
        self.status(index)
            .store(TP_STATUS_KERNEL, Ordering::Release);
        self.next = (index + 1) % self.shape.blocks as usize;
        count
    }

    /// Packets the kernel dropped because the ring was full, since the last
    /// call (the kernel resets its counters when read).
    pub fn drops(&self) -> io::Result<u32> {
        let mut stats = TpacketStatsV3::default();
        let mut len = std::mem::size_of::<TpacketStatsV3>() as libc::socklen_t;
        // SAFETY: `stats` has `len` writable bytes; the kernel writes at most that.
        check(unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                SOL_PACKET,
                PACKET_STATISTICS,
                (&mut stats as *mut TpacketStatsV3).cast(),
                &mut len,
            )
        })?;
        Ok(stats.drops)
    }
}

impl Drop for PacketRing {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `open` mapped; no borrow of it outlives
        // `&mut self` (blocks are lent only inside `next_block`).
        unsafe {
            libc::munmap(self.map.cast(), self.shape.bytes());
        }
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_ne_bytes)
}

fn read_u16(bytes: &[u8], at: usize) -> u16 {
    bytes
        .get(at..at + 2)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u16::from_ne_bytes)
}
