//! ClientHello parsing: bytes in, our typed model out. No I/O, no async.
//!
//! - [`record`]: reassembles the hello from TLS records; says how many bytes are
//!   still missing, or why the bytes are not TLS. Its [`Framing`] follows the
//!   records as bytes arrive, so a capture knows when the hello is whole
//!   without re-parsing everything after every read.
//! - `reader`: the bounds-checked byte cursor the parsers use.
//! - [`model`]: the parsed hello, every field in wire order.
//! - `extensions`: decoding of known extension bodies.
//! - [`wire`]: value newtypes with IANA names (GREASE and unknown values kept).
//! - [`error`]: incomplete vs. malformed vs. not TLS.
//!
//! Follows RFC 8446 §4.1.2 (ClientHello) and §5.1 (record layer); earlier
//! versions' hellos share the same layout (RFC 5246 §7.4.1.2).

pub mod error;
mod extensions;
pub mod model;
mod reader;
pub mod record;
pub mod wire;

pub use error::{HelloError, Malformed, NotTlsKind};
pub use model::{ClientHello, Extension, ExtensionData};
pub use record::Framing;

use reader::Reader;
use wire::{CipherSuite, ExtensionType, ProtocolVersion};

/// The largest ClientHello body we accept. Real hellos are 200 B–2 KB (a
/// post-quantum key share adds 1,216 B; padding and ECH push browsers to ~2 KB);
/// 64 KiB leaves room for giant PSK tickets and hostile-but-valid hellos while
/// capping what a peer can make us buffer.
pub const MAX_HELLO_BYTES: usize = 64 * 1024;

/// Parses a ClientHello from the bytes received so far, starting at the first
/// record header.
///
/// `Err(HelloError::Incomplete { .. })` means "a valid prefix: wait for more".
pub fn parse_client_hello(bytes: &[u8]) -> Result<ClientHello, HelloError> {
    let reassembled = record::reassemble(bytes, MAX_HELLO_BYTES)?;
    let mut r = Reader::new(&reassembled.body);

    let legacy_version = ProtocolVersion(r.u16("legacy_version")?);
    let mut random = [0u8; 32];
    random.copy_from_slice(r.take(32, "random")?);
    let session_id = r.vec8("legacy_session_id")?.rest().to_vec();
    if session_id.len() > 32 {
        return Err(Malformed::new("legacy_session_id", "longer than 32 bytes").into());
    }
    let cipher_suites = r
        .vec16("cipher_suites")?
        .u16_list("cipher_suites", CipherSuite)?;
    let compression_methods = r.vec8("legacy_compression_methods")?.rest().to_vec();

    // Hellos from before RFC 4366 may end here, with no extensions block.
    let mut extensions = Vec::new();
    if !r.is_empty() {
        let mut list = r.vec16("extensions")?;
        // Counted first, so the list is allocated once at its size: a
        // browser's hello has sixteen or more, which growing would copy
        // three times over.
        extensions.reserve_exact(count_extensions(list.clone()));
        while !list.is_empty() {
            let kind = ExtensionType(list.u16("extension type")?);
            let data = list.vec16("extension data")?.rest();
            extensions.push(Extension {
                kind,
                length: data.len(),
                decoded: extensions::decode(kind, data),
            });
        }
    }
    r.finish("ClientHello")?;

    Ok(ClientHello {
        records: reassembled.records,
        wire_length: reassembled.wire_length,
        handshake_length: reassembled.body.len() as u32,
        legacy_version,
        random,
        session_id,
        cipher_suites,
        compression_methods,
        extensions,
    })
}

/// How many extensions `list` holds, as far as their headers can be
/// followed (the parse that comes after names whatever is wrong).
fn count_extensions(mut list: Reader<'_>) -> usize {
    let mut count = 0;
    while !list.is_empty()
        && list.u16("extension type").is_ok()
        && list.vec16("extension data").is_ok()
    {
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests;
