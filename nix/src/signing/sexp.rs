//! The little of libgcrypt's S-expressions that Guix keys and signatures use: reading
//! the advanced and canonical forms (`(name #hex# "text" token 3:raw)`), finding a
//! list by its head as `gcry_sexp_find_token` does, and nothing else. Printing is done
//! by the callers' fixed templates (see `guix.rs`), byte for byte as libgcrypt does.

/// A parsed S-expression: a list or an atom's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sexp {
    /// `( … )`.
    List(Vec<Sexp>),
    /// A token, a `#hex#` string, a `"quoted"` string or a `len:raw` string.
    Atom(Vec<u8>),
}

/// Deepest nesting accepted (Guix's signatures nest 4 deep).
const MAX_DEPTH: usize = 16;
/// Largest S-expression accepted (a Guix signature is about 600 bytes).
pub const MAX_SEXP: usize = 64 << 10;

/// Why text is not an S-expression this module reads (`at` is a byte offset).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SexpError {
    /// Over [`MAX_SEXP`] bytes, or nested deeper than 16.
    #[error("the S-expression is too large or too deep")]
    TooLarge,
    /// Not one well-formed expression (unbalanced, a bad hex string, trailing data...).
    #[error("malformed S-expression at byte {at}")]
    Malformed {
        /// Where reading stopped.
        at: usize,
    },
}

impl Sexp {
    /// Parses exactly one expression (surrounding whitespace allowed).
    pub fn parse(input: &[u8]) -> Result<Sexp, SexpError> {
        if input.len() > MAX_SEXP {
            return Err(SexpError::TooLarge);
        }
        let mut p = Parser { s: input, i: 0 };
        let e = p.expr(0)?;
        p.ws();
        if p.i != input.len() {
            return Err(p.bad());
        }
        Ok(e)
    }

    /// The atom's bytes, if it is one.
    pub fn atom(&self) -> Option<&[u8]> {
        match self {
            Sexp::Atom(a) => Some(a),
            Sexp::List(_) => None,
        }
    }

    /// The first list, depth first, whose head is the atom `name` (this one included).
    pub fn find(&self, name: &str) -> Option<&[Sexp]> {
        let Sexp::List(items) = self else { return None };
        if items.first().and_then(Sexp::atom) == Some(name.as_bytes()) {
            return Some(items);
        }
        items.iter().find_map(|e| e.find(name))
    }

    /// The atom right after the head of the list `name`: `(name VALUE)`.
    pub fn value(&self, name: &str) -> Option<&[u8]> {
        self.find(name)?.get(1)?.atom()
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn bad(&self) -> SexpError {
        SexpError::Malformed { at: self.i }
    }

    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn expr(&mut self, depth: usize) -> Result<Sexp, SexpError> {
        if depth > MAX_DEPTH {
            return Err(SexpError::TooLarge);
        }
        self.ws();
        match *self.s.get(self.i).ok_or_else(|| self.bad())? {
            b'(' => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b')') => {
                            self.i += 1;
                            return Ok(Sexp::List(items));
                        }
                        Some(_) => items.push(self.expr(depth + 1)?),
                        None => return Err(self.bad()),
                    }
                }
            }
            b'#' => {
                self.i += 1;
                let start = self.i;
                let end = start
                    + self.s[start..]
                        .iter()
                        .position(|&c| c == b'#')
                        .ok_or_else(|| self.bad())?;
                let hex: Vec<u8> = self.s[start..end]
                    .iter()
                    .copied()
                    .filter(|c| !c.is_ascii_whitespace())
                    .collect();
                let bytes = hex_decode(&hex).ok_or_else(|| self.bad())?;
                self.i = end + 1;
                Ok(Sexp::Atom(bytes))
            }
            b'"' => {
                self.i += 1;
                let start = self.i;
                let len = self.s[start..]
                    .iter()
                    .position(|&c| c == b'"' || c == b'\\')
                    .ok_or_else(|| self.bad())?;
                if self.s[start + len] == b'\\' {
                    // Escapes never occur in keys and signatures; refuse rather than guess.
                    self.i = start + len;
                    return Err(self.bad());
                }
                self.i = start + len + 1;
                Ok(Sexp::Atom(self.s[start..start + len].to_vec()))
            }
            b'0'..=b'9' if self.len_prefix().is_some() => {
                let (n, colon) = self.len_prefix().expect("just checked");
                let start = colon + 1;
                let raw = self.s.get(start..start + n).ok_or_else(|| self.bad())?;
                self.i = start + n;
                Ok(Sexp::Atom(raw.to_vec()))
            }
            _ => {
                let start = self.i;
                while self.s.get(self.i).is_some_and(|&c| is_token_char(c)) {
                    self.i += 1;
                }
                if self.i == start {
                    return Err(self.bad());
                }
                Ok(Sexp::Atom(self.s[start..self.i].to_vec()))
            }
        }
    }

    /// `digits:` at the cursor (canonical form): the length and the colon's offset.
    fn len_prefix(&self) -> Option<(usize, usize)> {
        let digits = self.s[self.i..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        let colon = self.i + digits;
        if digits == 0 || digits > 5 || self.s.get(colon) != Some(&b':') {
            return None;
        }
        let n = std::str::from_utf8(&self.s[self.i..colon])
            .ok()?
            .parse()
            .ok()?;
        Some((n, colon))
    }
}

fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-./_:*+=".contains(&c)
}

/// Hex (either case) to bytes; `None` for an odd length or a non-hex digit.
pub fn hex_decode(hex: &[u8]) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    hex.chunks(2)
        .map(|p| {
            let hi = (p[0] as char).to_digit(16)?;
            let lo = (p[1] as char).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}

/// Upper-case hex, as libgcrypt prints `#…#` strings.
pub fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_advanced_and_canonical_forms() {
        let s = Sexp::parse(b" (a \n (b #0aFF#)\n (c \"x y\") 3:r)s)\n").unwrap();
        assert_eq!(s.value("b"), Some(&[0x0a, 0xff][..]));
        assert_eq!(s.value("c"), Some(&b"x y"[..]));
        let Sexp::List(items) = &s else { panic!() };
        assert_eq!(items[3], Sexp::Atom(b"r)s".to_vec()));
        assert_eq!(s.find("zz"), None);
        for bad in [
            &b"(a"[..],
            b"(a))",
            b"(#0#)",
            b"(\"a\\\"\")",
            b"",
            b"(9:ab)",
            b")",
        ] {
            assert!(
                Sexp::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = format!("{}{}", "(".repeat(40), ")".repeat(40));
        assert_eq!(Sexp::parse(deep.as_bytes()), Err(SexpError::TooLarge));
    }
}
