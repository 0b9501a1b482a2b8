//! The HTTP plumbing of the Kubo RPC client and the gateway client: the one home is
//! `narfs_nix::http`, which the binary cache reader shares.

pub(crate) use narfs_nix::http::{
    connect, decoded, next_data, parse_url, retried, BodyError, ConnectError, ContentCoding,
    UnknownCoding, ACCEPT_ENCODING,
};
