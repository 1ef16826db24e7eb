//! The classic BPF program the packet socket runs on every packet, in the
//! kernel, before anything is copied: TCP to or from our HTTPS ports, and the
//! ICMP "fragmentation needed" / ICMPv6 "packet too big" messages (which
//! connection one concerns is decided later, from the packet it quotes).
//! Pure: builds the instructions; `sys::packet_ring` attaches them.
//!
//! Offsets count from the network header (the socket is `SOCK_DGRAM`).
//! Fragments after the first carry no ports and are not kept.

use crate::sys::packet_ring::BpfInstruction;

/// Bytes of a packet the filter asks the kernel to keep: all of it (a
/// loopback segment can be 64 KiB; segmentation offload makes larger ones).
pub const SNAP_LENGTH: u32 = 262_144;

/// The loopback interface's index, the same in every network namespace.
/// Loopback shows each packet twice (leaving and arriving); the filter keeps
/// the arriving copy.
pub const LOOPBACK_INDEX: u32 = 1;

const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MSH: u16 = 0xa0;
const JA: u16 = 0x00;
const JEQ: u16 = 0x10;
const JSET: u16 = 0x40;
const K: u16 = 0x00;

/// `SKF_AD_OFF`: loads at negative offsets read the packet's metadata.
const ANCILLARY: u32 = (-0x1000i32) as u32;
const PROTOCOL: u32 = ANCILLARY;
const PKTTYPE: u32 = ANCILLARY + 4;
const IFINDEX: u32 = ANCILLARY + 8;
const PACKET_OUTGOING: u32 = 4;

/// A jump target, resolved when the program is finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Label(usize);

#[derive(Debug)]
enum Step {
    Plain(u16, u32),
    /// Conditional jump: `code`, `k`, then where to go if true, if false.
    Branch(u16, u32, Label, Label),
    Always(Label),
    Here(Label),
}

#[derive(Debug, Default)]
struct Program {
    steps: Vec<Step>,
    labels: usize,
}

impl Program {
    fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }
    fn at(&mut self, label: Label) {
        self.steps.push(Step::Here(label));
    }
    fn load(&mut self, code: u16, k: u32) {
        self.steps.push(Step::Plain(code, k));
    }
    fn branch(&mut self, code: u16, k: u32, yes: Label, no: Label) {
        self.steps.push(Step::Branch(code, k, yes, no));
    }
    /// Jumps to `yes` when the accumulator equals `k`, else falls through.
    fn equal(&mut self, k: u32, yes: Label) {
        let next = self.label();
        self.branch(JMP | JEQ | K, k, yes, next);
        self.at(next);
    }
    fn goto(&mut self, to: Label) {
        self.steps.push(Step::Always(to));
    }

    /// Resolves labels into the kernel's forward-only relative jumps.
    fn finish(self) -> Result<Vec<BpfInstruction>, FilterError> {
        let mut position = vec![None; self.labels];
        let mut index = 0usize;
        for step in &self.steps {
            match step {
                Step::Here(Label(l)) => position[*l] = Some(index),
                _ => index += 1,
            }
        }
        let mut out = Vec::with_capacity(index);
        for step in &self.steps {
            let here = out.len();
            let offset = |Label(l): Label| -> Result<u32, FilterError> {
                let target = position[l].ok_or(FilterError::Unresolved)?;
                target
                    .checked_sub(here + 1)
                    .map(|d| d as u32)
                    .ok_or(FilterError::Backward)
            };
            let short = |label: Label| -> Result<u8, FilterError> {
                u8::try_from(offset(label)?).map_err(|_| FilterError::TooFar)
            };
            match *step {
                Step::Here(_) => continue,
                Step::Plain(code, k) => out.push(BpfInstruction {
                    code,
                    jt: 0,
                    jf: 0,
                    k,
                }),
                Step::Branch(code, k, yes, no) => out.push(BpfInstruction {
                    code,
                    jt: short(yes)?,
                    jf: short(no)?,
                    k,
                }),
                Step::Always(to) => out.push(BpfInstruction {
                    code: JMP | JA,
                    jt: 0,
                    jf: 0,
                    k: offset(to)?,
                }),
            }
        }
        Ok(out)
    }
}

/// Why no program could be built (a bug here, or too many ports).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("BPF program: a jump to a label never placed")]
    Unresolved,
    #[error("BPF program: a backward jump")]
    Backward,
    #[error("BPF program: a conditional jump farther than 255 instructions (too many ports)")]
    TooFar,
    #[error("no TCP port to capture")]
    NoPorts,
}

/// The filter for TCP on `ports` (ours, either direction) and the ICMP that
/// may concern it.
pub fn program(ports: &[u16]) -> Result<Vec<BpfInstruction>, FilterError> {
    if ports.is_empty() {
        return Err(FilterError::NoPorts);
    }
    let mut p = Program::default();
    let (accept, drop) = (p.label(), p.label());
    let (protocol, v4, v6) = (p.label(), p.label(), p.label());

    // Loopback's leaving copy of each packet is dropped.
    let outgoing = p.label();
    p.load(LD | W | ABS, PKTTYPE);
    p.branch(JMP | JEQ | K, PACKET_OUTGOING, outgoing, protocol);
    p.at(outgoing);
    p.load(LD | W | ABS, IFINDEX);
    p.branch(JMP | JEQ | K, LOOPBACK_INDEX, drop, protocol);

    p.at(protocol);
    p.load(LD | W | ABS, PROTOCOL);
    p.equal(0x0800, v4);
    p.branch(JMP | JEQ | K, 0x86dd, v6, drop);

    // IPv4: TCP (first fragments only), or ICMP type 3 code 4.
    let (tcp4, icmp4, code4) = (p.label(), p.label(), p.label());
    p.at(v4);
    p.load(LD | B | ABS, 9);
    p.equal(6, tcp4);
    p.branch(JMP | JEQ | K, 1, icmp4, drop);
    p.at(tcp4);
    let first_fragment = p.label();
    p.load(LD | H | ABS, 6);
    p.branch(JMP | JSET | K, 0x1fff, drop, first_fragment);
    p.at(first_fragment);
    p.load(LDX | B | MSH, 0);
    ports_match(&mut p, LD | H | IND, 0, ports, accept);
    ports_match(&mut p, LD | H | IND, 2, ports, accept);
    p.goto(drop);
    p.at(icmp4);
    p.load(LDX | B | MSH, 0);
    p.load(LD | B | IND, 0);
    p.branch(JMP | JEQ | K, 3, code4, drop);
    p.at(code4);
    p.load(LD | B | IND, 1);
    p.branch(JMP | JEQ | K, 4, accept, drop);

    // IPv6 without extension headers: TCP, or ICMPv6 type 2.
    let (tcp6, icmp6) = (p.label(), p.label());
    p.at(v6);
    p.load(LD | B | ABS, 6);
    p.equal(6, tcp6);
    p.branch(JMP | JEQ | K, 58, icmp6, drop);
    p.at(tcp6);
    ports_match(&mut p, LD | H | ABS, 40, ports, accept);
    ports_match(&mut p, LD | H | ABS, 42, ports, accept);
    p.goto(drop);
    p.at(icmp6);
    p.load(LD | B | ABS, 40);
    p.branch(JMP | JEQ | K, 2, accept, drop);

    p.at(accept);
    p.load(RET | K, SNAP_LENGTH);
    p.at(drop);
    p.load(RET | K, 0);
    p.finish()
}

/// Loads the port at `offset` and jumps to `accept` when it is one of ours.
fn ports_match(p: &mut Program, load: u16, offset: u32, ports: &[u16], accept: Label) {
    p.load(load, offset);
    for &port in ports {
        p.equal(u32::from(port), accept);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter for the instructions `program` emits, so the
    /// filter's decisions can be checked on real packet bytes.
    fn run(program: &[BpfInstruction], packet: &[u8], meta: (u32, u32, u32)) -> u32 {
        let (protocol, pkttype, ifindex) = meta;
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let byte = |at: usize| u32::from(packet.get(at).copied().unwrap_or(0));
        let half = |at: usize| (byte(at) << 8) | byte(at + 1);
        loop {
            let i = program[pc];
            pc += 1;
            match i.code {
                c if c == LD | W | ABS => {
                    a = match i.k {
                        PROTOCOL => protocol,
                        PKTTYPE => pkttype,
                        IFINDEX => ifindex,
                        _ => panic!("word load at {}", i.k),
                    }
                }
                c if c == LD | H | ABS => a = half(i.k as usize),
                c if c == LD | B | ABS => a = byte(i.k as usize),
                c if c == LD | H | IND => a = half((x + i.k) as usize),
                c if c == LD | B | IND => a = byte((x + i.k) as usize),
                c if c == LDX | B | MSH => x = 4 * (byte(i.k as usize) & 0xf),
                c if c == JMP | JA => pc += i.k as usize,
                c if c == JMP | JEQ | K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                c if c == JMP | JSET | K => {
                    pc += usize::from(if a & i.k != 0 { i.jt } else { i.jf })
                }
                c if c == RET | K => return i.k,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    fn ipv4_tcp(src_port: u16, dst_port: u16, fragment: u16) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 40, 0, 0];
        p.extend_from_slice(&fragment.to_be_bytes());
        p.extend_from_slice(&[64, 6, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2]);
        p.extend_from_slice(&src_port.to_be_bytes());
        p.extend_from_slice(&dst_port.to_be_bytes());
        p.resize(40, 0);
        p
    }

    fn ipv6(next: u8, rest: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, rest.len() as u8, next, 64];
        p.extend_from_slice(&[0u8; 32]);
        p.extend_from_slice(rest);
        p
    }

    const HOST: u32 = 0;
    const V4: u32 = 0x0800;
    const V6: u32 = 0x86dd;

    #[test]
    fn keeps_our_ports_both_ways_and_nothing_else() {
        let f = program(&[443, 8443]).unwrap();
        assert_eq!(
            run(&f, &ipv4_tcp(50000, 443, 0), (V4, HOST, 2)),
            SNAP_LENGTH
        );
        assert_eq!(
            run(&f, &ipv4_tcp(8443, 50000, 0x4000), (V4, HOST, 2)),
            SNAP_LENGTH,
            "DF set"
        );
        assert_eq!(run(&f, &ipv4_tcp(50000, 22, 0), (V4, HOST, 2)), 0);
        assert_eq!(
            run(&f, &ipv4_tcp(50000, 443, 0x0010), (V4, HOST, 2)),
            0,
            "later fragment"
        );
        let tcp6 = [0xc3, 0x50, 0x01, 0xbb];
        assert_eq!(run(&f, &ipv6(6, &tcp6), (V6, HOST, 2)), SNAP_LENGTH);
        assert_eq!(run(&f, &ipv6(6, &[0xc3, 0x50, 0, 22]), (V6, HOST, 2)), 0);
        assert_eq!(run(&f, &ipv6(17, &tcp6), (V6, HOST, 2)), 0, "UDP");
        assert_eq!(run(&f, &[0u8; 60], (0x0806, HOST, 2)), 0, "ARP");
    }

    #[test]
    fn keeps_only_the_too_big_kind_of_icmp() {
        let f = program(&[443]).unwrap();
        let mut icmp4 = vec![0x45, 0, 0, 56, 0, 0, 0, 0, 64, 1, 0, 0];
        icmp4.extend_from_slice(&[198, 18, 0, 1, 198, 18, 0, 2]);
        icmp4.extend_from_slice(&[3, 4, 0, 0, 0, 0, 5, 0xdc]);
        assert_eq!(run(&f, &icmp4, (V4, HOST, 2)), SNAP_LENGTH);
        icmp4[21] = 1; // host unreachable
        assert_eq!(run(&f, &icmp4, (V4, HOST, 2)), 0);
        assert_eq!(
            run(&f, &ipv6(58, &[2, 0, 0, 0]), (V6, HOST, 2)),
            SNAP_LENGTH
        );
        assert_eq!(
            run(&f, &ipv6(58, &[128, 0, 0, 0]), (V6, HOST, 2)),
            0,
            "echo"
        );
    }

    #[test]
    fn loopback_is_kept_once() {
        let f = program(&[443]).unwrap();
        let p = ipv4_tcp(50000, 443, 0);
        assert_eq!(run(&f, &p, (V4, PACKET_OUTGOING, LOOPBACK_INDEX)), 0);
        assert_eq!(run(&f, &p, (V4, HOST, LOOPBACK_INDEX)), SNAP_LENGTH);
        assert_eq!(
            run(&f, &p, (V4, PACKET_OUTGOING, 2)),
            SNAP_LENGTH,
            "a real interface's"
        );
    }

    #[test]
    fn no_ports_is_an_error() {
        assert_eq!(program(&[]), Err(FilterError::NoPorts));
    }
}
