//! What the kernel knows about a TCP connection: the client's SYN
//! ([`syn`], pure parsing of `TCP_SAVED_SYN`) and the live connection state
//! ([`info`], `TCP_INFO` snapshots). Reading the socket options lives in
//! `crate::sys`; this module turns their bytes and structs into report data.

pub mod info;
pub mod syn;

pub use info::{TcpHandle, TcpInfo};
pub use syn::SynInfo;
