//! Chunkers: split one file's bytes into leaf chunks. A chunker is restarted at every
//! file boundary, so identical files always give identical chunks, whatever
//! surrounds them in the NAR.

use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

use fastcdc::v2020::{select_masks, Normalization};

/// How to cut a file into chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunker {
    /// Fixed-size chunks, as Kubo's `size-N`.
    Fixed(usize),
    /// FastCDC 2020 content-defined chunks (the `fastcdc` crate, normalisation level 1).
    FastCdc { min: usize, avg: usize, max: usize },
}

/// The largest chunk any chunker may produce: IPFS peers refuse blocks over 2 MiB, and
/// a leaf is a block.
pub const MAX_CHUNK: usize = 2 << 20;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkerSpecError {
    /// Not one of the spellings.
    #[error("unknown chunker `{0}`: expected fixed:SIZE or fastcdc:MIN:AVG:MAX")]
    Syntax(String),
    /// A spelling whose sizes are out of range (the second field says which rule).
    #[error("chunker `{0}`: {1}")]
    Invalid(String, &'static str),
}

impl FromStr for Chunker {
    type Err = ChunkerSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || ChunkerSpecError::Syntax(s.to_string());
        let invalid = |why| ChunkerSpecError::Invalid(s.to_string(), why);
        // Kubo's spelling of the fixed chunker (`ipfs add --chunker=size-262144`).
        let kubo = s.strip_prefix("size-").map(|n| format!("fixed:{n}"));
        let mut parts = kubo.as_deref().unwrap_or(s).split(':');
        let kind = parts.next().ok_or_else(syntax)?;
        let nums: Vec<usize> = parts
            .map(|p| p.parse::<usize>().map_err(|_| syntax()))
            .collect::<Result<_, _>>()?;
        match (kind, nums.as_slice()) {
            ("fixed", &[size]) => {
                if size == 0 || size > MAX_CHUNK {
                    return Err(invalid("SIZE must be between 1 and 2097152"));
                }
                Ok(Chunker::Fixed(size))
            }
            ("fastcdc", &[min, avg, max]) => {
                use fastcdc::v2020::{AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MIN, MINIMUM_MIN};
                if !(min <= avg && avg <= max) {
                    return Err(invalid("need MIN <= AVG <= MAX"));
                }
                if min < MINIMUM_MIN || avg < AVERAGE_MIN || max < MAXIMUM_MIN {
                    return Err(invalid("sizes below FastCDC's minimums (64:256:1024)"));
                }
                if avg > AVERAGE_MAX || max > MAX_CHUNK {
                    return Err(invalid("MAX must be at most 2097152"));
                }
                if min % 2 + avg % 2 + max % 2 != 0 {
                    return Err(invalid("FastCDC 2020 needs even sizes"));
                }
                Ok(Chunker::FastCdc { min, avg, max })
            }
            ("fixed" | "fastcdc", _) => Err(syntax()),
            _ => Err(syntax()),
        }
    }
}

impl fmt::Display for Chunker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Chunker::Fixed(n) => write!(f, "fixed:{n}"),
            Chunker::FastCdc { min, avg, max } => write!(f, "fastcdc:{min}:{avg}:{max}"),
        }
    }
}

/// Reusable working memory for chunking, so that the hot path does not allocate.
#[derive(Default)]
pub struct ChunkBuffer {
    buf: Vec<u8>,
}

/// Errors while chunking: reading the input, or whatever the chunk consumer said.
#[derive(Debug)]
pub enum ChunkError<E> {
    /// Reading the input failed.
    Read(io::Error),
    /// The chunk consumer returned an error.
    Consumer(E),
}

impl Chunker {
    /// Largest chunk this chunker produces.
    pub fn max_chunk(&self) -> usize {
        match *self {
            Chunker::Fixed(n) => n,
            Chunker::FastCdc { max, .. } => max,
        }
    }

    /// FastCDC's masks for [`Chunker::cut`] (computed once per file, not per chunk).
    pub(crate) fn masks(&self) -> (u64, u64) {
        match *self {
            Chunker::FastCdc { avg, .. } => select_masks(avg, Normalization::Level1),
            Chunker::Fixed(_) => (0, 0),
        }
    }

    /// The length of the chunk at the start of `window`, which holds at least
    /// [`Chunker::max_chunk`] bytes unless the file ends within it; `masks` from
    /// [`Chunker::masks`]. At least 1 for a non-empty window.
    pub(crate) fn cut(&self, window: &[u8], (ms, ml): (u64, u64)) -> usize {
        let avail = window.len();
        match *self {
            Chunker::Fixed(n) => n.min(avail),
            // The crate's cut points, found several positions at a time.
            Chunker::FastCdc { min, avg, max } => {
                crate::gear_scan::cut(window, min, avg, max, ms, ml).clamp(1, avail.max(1))
            }
        }
    }

    /// Cuts everything `input` yields into chunks and hands each to `on_chunk`, in
    /// order. An empty input gives exactly one empty chunk (an empty file is one
    /// empty leaf). Returns the number of bytes read.
    pub fn chunk<R: Read, E>(
        &self,
        mut input: R,
        buffer: &mut ChunkBuffer,
        mut on_chunk: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<u64, ChunkError<E>> {
        let max = self.max_chunk();
        // Room for a whole window beyond what is kept, so compaction is rare.
        let cap = (2 * max).max(1 << 20);
        let buf = &mut buffer.buf;
        if buf.len() < cap {
            buf.resize(cap, 0);
        }
        let masks = self.masks();
        let (mut start, mut end, mut total, mut eof, mut chunks) =
            (0usize, 0usize, 0u64, false, 0u64);
        loop {
            // Make sure a whole max-size window is buffered, or the input has ended.
            while !eof && end - start < max {
                if cap - end < max {
                    buf.copy_within(start..end, 0);
                    end -= start;
                    start = 0;
                }
                match input.read(&mut buf[end..]) {
                    Ok(0) => eof = true,
                    Ok(n) => {
                        end += n;
                        total += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(ChunkError::Read(e)),
                }
            }
            let avail = end - start;
            if avail == 0 {
                if chunks == 0 {
                    on_chunk(&[]).map_err(ChunkError::Consumer)?;
                }
                return Ok(total);
            }
            let len = self.cut(&buf[start..end], masks);
            on_chunk(&buf[start..start + len]).map_err(ChunkError::Consumer)?;
            chunks += 1;
            start += len;
        }
    }
}

/// A reader that returns at most `.1` bytes a call (small, odd-sized reads), so that
/// the tests of chunking and parsing exercise refilling.
#[cfg(test)]
pub(crate) struct Dribble<'a>(pub(crate) &'a [u8], pub(crate) usize);

#[cfg(test)]
impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.0.len()).min(self.1);
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(c: Chunker, data: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut b = ChunkBuffer::default();
        let total = c
            .chunk::<_, ()>(Dribble(data, 7919), &mut b, |ch| {
                out.push(ch.len());
                Ok(())
            })
            .unwrap_or_else(|_| panic!("chunking failed"));
        assert_eq!(total as usize, data.len());
        out
    }

    fn noise(len: usize) -> Vec<u8> {
        narfs_core::noise::bytes(0, len)
    }

    #[test]
    fn fixed_chunks_are_exact() {
        let c: Chunker = "fixed:262144".parse().unwrap();
        assert_eq!(sizes(c, &[]), vec![0]);
        assert_eq!(sizes(c, &noise(262_144)), vec![262_144]);
        assert_eq!(sizes(c, &noise(262_145)), vec![262_144, 1]);
        assert_eq!(sizes(c, &noise(3 * 262_144 + 5)).len(), 4);
    }

    #[test]
    fn kubo_size_spelling_is_the_fixed_chunker() {
        assert_eq!(
            "size-262144".parse::<Chunker>().unwrap(),
            Chunker::Fixed(262_144)
        );
        assert_eq!(
            "size-1048576".parse::<Chunker>().unwrap().to_string(),
            "fixed:1048576"
        );
        assert!("size-0".parse::<Chunker>().is_err());
        assert!("size-x".parse::<Chunker>().is_err());
    }

    #[test]
    fn fastcdc_matches_the_crate_on_a_whole_buffer() {
        let data = noise(3_000_000);
        let c: Chunker = "fastcdc:16384:65536:262144".parse().unwrap();
        let ours = sizes(c, &data);
        let theirs: Vec<usize> = fastcdc::v2020::FastCDC::new(&data, 16384, 65536, 262_144)
            .map(|ch| ch.length)
            .collect();
        assert_eq!(ours, theirs);
        assert!(ours.iter().all(|&n| n <= 262_144));
    }

    #[test]
    fn fastcdc_resynchronises_after_an_insertion() {
        let data = noise(2_000_000);
        let mut edited = data.clone();
        edited.splice(1000..1000, *b"inserted");
        let c: Chunker = "fastcdc:2048:8192:32768".parse().unwrap();
        let (a, b) = (sizes(c, &data), sizes(c, &edited));
        let common = a
            .iter()
            .rev()
            .zip(b.iter().rev())
            .take_while(|(x, y)| x == y)
            .count();
        assert!(
            common > a.len() * 9 / 10,
            "only {common} of {} chunks shared",
            a.len()
        );
    }

    #[test]
    fn specs_are_checked() {
        for bad in [
            "fixed",
            "fixed:0",
            "fixed:x",
            "fastcdc:1:2",
            "fastcdc:4096:2048:8192",
            "fastcdc:16:64:256",
            "fastcdc:2049:8192:32768",
            "rabin:1",
        ] {
            assert!(bad.parse::<Chunker>().is_err(), "{bad} accepted");
        }
        let c: Chunker = "fastcdc:16384:65536:262144".parse().unwrap();
        assert_eq!(c.to_string(), "fastcdc:16384:65536:262144");
    }
}
