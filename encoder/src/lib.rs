//! Chunkers, the UnixFS DAG builder and block sinks.
