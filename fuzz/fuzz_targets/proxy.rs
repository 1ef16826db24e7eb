//! The PROXY protocol header reader's logic (`tlsdiag::proxy`): framing,
//! then decoding, over the bytes a balancer (or anyone reaching a port with
//! `--proxy-protocol`) sends first.
//!
//! Checks, beyond "no panic": a header is never longer than its bound (107
//! bytes for v1, 536 for v2); what follows it never changes the answer (the
//! reader takes not a byte past the header); every proper prefix of a header
//! asks for more instead of failing or deciding early; `frame` over the
//! consumed bytes agrees the header is complete; a named client comes only
//! with a relayed (`Proxied`) header.
#![no_main]

use libfuzzer_sys::fuzz_target;

use tlsdiag::proxy::{frame, split, Frame, ViaKind, V1_MAX, V2_MAX};

fuzz_target!(|data: &[u8]| {
    let Ok(Some((decoded, n))) = split(data) else {
        // Errors and "need more" on a prefix are the same on any extension
        // that only adds bytes the reader would not have consumed yet.
        return;
    };
    let bound = if data[0] == b'\r' { V2_MAX } else { V1_MAX };
    assert!(n <= bound, "{n}-byte header over its {bound}-byte bound");
    assert_eq!(frame(&data[..n]), Ok(Frame::Complete(n)));
    // Anything after the header is the client's: it changes nothing.
    let mut longer = data[..n].to_vec();
    longer.extend_from_slice(b"\x16\x03\x01\x02\x00\x01");
    assert_eq!(split(&longer), Ok(Some((decoded, n))));
    assert_eq!(split(&data[..n]), Ok(Some((decoded, n))));
    // A header cut anywhere still only asks for more.
    for cut in 0..n {
        assert_eq!(split(&data[..cut]), Ok(None), "cut at {cut} of {n}");
    }
    assert!(decoded.version == 1 || decoded.version == 2);
    assert_eq!(decoded.source.is_some(), decoded.kind == ViaKind::Proxied);
});
