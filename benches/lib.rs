//! Shared inputs for the criterion benches: deterministic synthetic NARs shaped like
//! store items (many small files, a few large ones).

use narfs_core::nar::NarWriter;

/// A NAR of about `total` bytes: a directory of files whose sizes follow a rough
/// store-item mix (mostly small, some large), filled with pseudo-random bytes.
pub fn synthetic_nar(total: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(total + total / 8);
    let mut w = NarWriter::new(&mut out);
    w.directory(b"").unwrap();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut written = 0usize;
    let mut i = 0u32;
    while written < total {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let size = match state % 10 {
            0 => (state >> 8) as usize % (4 << 20),
            1..=3 => (state >> 8) as usize % (64 << 10),
            _ => (state >> 8) as usize % 4096,
        }
        .min(total - written);
        let data: Vec<u8> = (0..size)
            .map(|j| (state >> (j % 56)) as u8 ^ j as u8)
            .collect();
        let name = format!("f{i:08}");
        w.file(
            name.as_bytes(),
            i.is_multiple_of(7),
            size as u64,
            &mut &data[..],
        )
        .unwrap();
        written += size;
        i += 1;
    }
    w.end_directory().unwrap();
    w.finish().unwrap();
    out
}
