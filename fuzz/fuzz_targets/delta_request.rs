//! Fuzz target: the server's parser of a delta request body (`parse_request`), on
//! arbitrary bytes.
//!
//! Oracle: no panic; at most `MAX_ITEMS` items from at most `MAX_REQUEST` bytes; an
//! accepted body re-encodes (`request_body`) to a body that parses to the same items
//! and re-encodes to itself. The format is not canonical (empty lines, `\r\n`, any
//! multibase or CIDv0 spelling are accepted), so the input itself is the re-encoding
//! only when it is already in the client's spelling.
#![no_main]

use libfuzzer_sys::fuzz_target;
use narfs_ipfs::delta_wire::{parse_request, request_body, MAX_ITEMS, MAX_REQUEST};

fuzz_target!(|data: &[u8]| {
    let Ok(items) = parse_request(data) else {
        return;
    };
    assert!(data.len() <= MAX_REQUEST);
    assert!(items.len() <= MAX_ITEMS);
    let body = request_body(&items);
    let again = parse_request(&body).expect("a re-encoded request parses");
    assert_eq!(again, items);
    assert_eq!(request_body(&again), body);
    // The client's own spelling: one `CID[ BASE]\n` per item, nothing else.
    let canonical = data.is_empty()
        || (data.ends_with(b"\n")
            && !data.contains(&b'\r')
            && !data.windows(2).any(|w| w == b"\n\n")
            && data[0] != b'\n');
    if canonical && body != data {
        // Only the CIDs' spelling may differ: as many lines, as many words.
        let words = |b: &[u8]| b.split(|&c| c == b'\n' || c == b' ').count();
        assert_eq!(words(&body), words(data));
    }
});
