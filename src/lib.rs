//! tlsdiag
pub mod fingerprint;
pub mod hello;
