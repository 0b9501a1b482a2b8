//! The CAR reader and the verifying DAG walker that streams a UnixFS DAG back into a NAR.
