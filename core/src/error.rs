//! One way to say an error with its causes: our error types never repeat their
//! source in `Display`, so whoever flattens an error into text (an HTTP body, a
//! problem list, a fallback reason, the command line) walks the chain with this.

use std::error::Error;

/// `e` and its sources on one line: "message: cause: cause". A cause whose text the
/// previous message already ends with (some other crate's error that inlines its
/// source) is left out, so nothing is said twice.
///
/// ```
/// use std::io;
/// #[derive(Debug, thiserror::Error)]
/// #[error("cannot read the index")]
/// struct ReadIndex(#[source] io::Error);
///
/// let e = ReadIndex(io::Error::other("disk on fire"));
/// assert_eq!(narfs_core::error_chain(&e), "cannot read the index: disk on fire");
/// ```
pub fn error_chain(e: &(dyn Error + 'static)) -> String {
    let mut line = String::new();
    let mut next: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(e) = next {
        next = e.source();
        let cause = e.to_string();
        if line.is_empty() {
            line = cause;
        } else if !line.ends_with(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::error_chain;
    use std::io;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Inlines(#[source] io::Error);

    #[test]
    fn a_cause_already_said_is_not_repeated() {
        let e = Inlines(io::Error::other("inner"));
        assert_eq!(error_chain(&e), "outer: inner");
    }
}
