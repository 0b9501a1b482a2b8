//! The HTTP plumbing of the Kubo RPC client and the gateway client: the one home is
//! `narfs_nix::http`, which the binary cache reader shares.

pub(crate) use narfs_nix::http::{
    connect, decoded, parse_url, retried, ConnectError, ContentCoding, UnknownCoding,
    ACCEPT_ENCODING,
};
