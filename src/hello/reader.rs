//! A bounds-checked cursor over `&[u8]` for TLS's length-prefixed vectors.
//!
//! Why our own instead of `tls-parser`'s nom combinators: every failure here must
//! name the field it happened in (the report shows it to a human), and a length
//! that runs past the input must be told apart from a length that lies. Callers only
//! ever see [`Malformed`]: by the time we parse a handshake body it is complete
//! (reassembly in `record.rs` already waited for all of it), so running short is
//! always a malformed length, never "need more bytes".

use super::error::Malformed;

/// A forward-only cursor. Every read either succeeds or names the field.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    #[inline]
    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], Malformed> {
        let Some(out) = self.bytes.get(self.pos..).and_then(|rest| rest.get(..n)) else {
            return Err(self.short(n, field));
        };
        self.pos += n;
        Ok(out)
    }

    /// The error for a read past the end, kept out of line: every field
    /// read of every hello goes through [`Self::take`], and only a broken
    /// hello ever gets here.
    #[cold]
    #[inline(never)]
    fn short(&self, n: usize, field: &'static str) -> Malformed {
        Malformed::new(
            field,
            format!("needs {n} bytes, only {} left", self.remaining()),
        )
    }

    #[inline]
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, Malformed> {
        Ok(self.take(1, field)?[0])
    }

    #[inline]
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, Malformed> {
        let b = self.take(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A vector with a one-byte length prefix, as a sub-reader.
    pub(crate) fn vec8(&mut self, field: &'static str) -> Result<Reader<'a>, Malformed> {
        let len = usize::from(self.u8(field)?);
        Ok(Reader::new(self.take(len, field)?))
    }

    /// A vector with a two-byte length prefix, as a sub-reader.
    pub(crate) fn vec16(&mut self, field: &'static str) -> Result<Reader<'a>, Malformed> {
        let len = usize::from(self.u16(field)?);
        Ok(Reader::new(self.take(len, field)?))
    }

    /// Everything left, consuming it.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = &self.bytes[self.pos..];
        self.pos = self.bytes.len();
        out
    }

    /// Fails unless the whole input was consumed: trailing bytes inside a
    /// length-delimited structure mean one of its lengths is wrong.
    pub(crate) fn finish(&self, field: &'static str) -> Result<(), Malformed> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Malformed::new(
                field,
                format!("{} unexpected trailing bytes", self.remaining()),
            ))
        }
    }

    /// Reads a list of big-endian u16 values filling the whole reader, each
    /// made into a `T` (the value's newtype), into a vector of exactly its size.
    pub(crate) fn u16_list<T>(
        mut self,
        field: &'static str,
        each: impl Fn(u16) -> T,
    ) -> Result<Vec<T>, Malformed> {
        if self.remaining() % 2 != 0 {
            return Err(Malformed::new(
                field,
                "odd length for a list of 16-bit values",
            ));
        }
        Ok(self
            .rest()
            .chunks_exact(2)
            .map(|pair| each(u16::from_be_bytes([pair[0], pair[1]])))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_length_past_end_with_field_name() {
        let mut r = Reader::new(&[0x00, 0x05, 0xaa]);
        let err = r.vec16("cipher_suites").unwrap_err();
        assert_eq!(err.field, "cipher_suites");
    }

    #[test]
    fn rejects_odd_u16_list() {
        assert!(Reader::new(&[1, 2, 3]).u16_list("groups", |v| v).is_err());
    }
}
