//! narfs's CIDs for the generated interop trees equal the checked-in reference
//! vectors (`tests/vectors/`, Kubo's CIDs, which the JS importer gives too). Needs no
//! peer: this is the CID check that runs where Kubo and Node are missing.

mod common;

use common::*;

#[test]
fn generated_trees_match_the_vectors_under_both_profiles() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, _) in trees::TREES {
        let dir = trees::build(name, tmp.path());
        for profile in ["kubo-v1", "unixfs-v1-2025"] {
            let car = tmp.path().join(format!("{name}-{profile}.car"));
            let entries = encode_entries(&dir, profile, &car, &[]);
            vectors::check(profile, name, &entries, "narfs");
            std::fs::remove_file(&car).unwrap();
        }
    }
}
