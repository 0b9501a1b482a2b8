//! Publishing into a Kubo node over its RPC API (`/api/v0`): each DAG goes in as one
//! CARv1 streamed into `POST /api/v0/dag/import?pin-roots=true`, written by
//! [`export_car`] on a thread of its own while hyper sends it, through a channel of
//! [`DEPTH`] chunks of [`CHUNK`] bytes: memory stays bounded whatever the DAG's size.
//!
//! The HTTP client is hyper's own HTTP/1 connection API: hyper, hyper-util,
//! http-body-util and tokio are in the lock file already (axum serves with them), and
//! hyper's `client` feature adds two tiny crates (`want`, `try-lock`), where `ureq`,
//! the small blocking client, would bring a second HTTP stack of its own. hyper also
//! hands over the response trailers, where Kubo reports an error met after it has
//! started answering (`X-Stream-Error`).
//!
//! How Kubo dedups an import (Kubo 0.43 `core/commands/dag/import.go`, boxo
//! `blockservice` and `blockstore`): it reads and decodes every block of the CAR and,
//! with `Datastore.WriteThrough` at its default `true`, writes each one again (flatfs
//! rewrites the file), skipping only those its key cache remembers. The repo does not
//! grow, since the keys are the same, but the whole CAR still crosses the wire and
//! is rewritten. So [`Kubo::publish`] first asks whether the root is pinned
//! recursively (Kubo pins so only with the whole DAG present) and then sends nothing.

use std::io;

use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::channel::Channel;
use http_body_util::{BodyExt, Empty};
use narfs_core::block::BlockSource;
use narfs_core::Cid;
use narfs_store::Store;
use serde_json::Value;

use crate::{ExportError, Exported};
use body::{boundary_of, feed, Feed};

/// Bytes per chunk of the request body.
pub const CHUNK: usize = 256 << 10;
/// Chunks in flight: with [`CHUNK`], at most 1 MiB of CAR queued (a block larger
/// than a chunk goes as one chunk of its own size).
pub const DEPTH: usize = 4;
/// The largest answer read: Kubo's are a few lines of JSON.
const MAX_ANSWER: usize = 1 << 20;

/// A Kubo node's RPC API, checked to be one (`POST /api/v0/version`) when connected.
pub struct Kubo {
    /// The address as given, for messages.
    api: String,
    /// `HOST:PORT`, dialled and sent as `Host`.
    authority: String,
    /// A path prefix before `/api/v0` (empty unless the API sits behind a proxy).
    prefix: String,
    version: String,
    runtime: tokio::runtime::Runtime,
}

/// What [`Kubo::publish`] did with one root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// The node had the root pinned recursively already, so nothing was sent.
    pub already_pinned: bool,
    /// The CAR sent: distinct blocks and bytes, header included (zero if pinned).
    pub sent: Exported,
    /// The blocks and block bytes the node says it read (its `Stats`).
    pub node_blocks: u64,
    /// See `node_blocks`.
    pub node_block_bytes: u64,
}

/// Why talking to the node failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KuboError {
    /// The address is not `http://HOST[:PORT][/PREFIX]`.
    #[error("{url:?} is not the http://HOST:PORT address of a Kubo RPC API")]
    Url { url: String },
    /// No TCP connection: nothing listens there, or the connection timed out.
    #[error("cannot connect to the IPFS node at {api}")]
    Connect {
        api: String,
        #[source]
        source: io::Error,
    },
    /// The HTTP exchange failed midway (connection reset, malformed HTTP).
    #[error("the HTTP exchange with {api} failed")]
    Http {
        api: String,
        #[source]
        source: hyper::Error,
    },
    /// What answers there is not Kubo's RPC API.
    #[error("{api} is not a Kubo RPC API: {what}")]
    NotKubo { api: String, what: String },
    /// The node refused or failed the request, with this message of its own.
    #[error("the node answered: {message}")]
    Node { message: String },
    /// The node imported the blocks but could not pin the root.
    #[error("the node could not pin the root: {message}")]
    Pin { message: String },
    /// The answer is not what this RPC call gives.
    #[error("unexpected answer to {call}: {what}")]
    Answer { call: &'static str, what: String },
    /// The DAG could not be read from the source.
    #[error("cannot read the DAG to send")]
    Export(#[from] ExportError),
    /// The store could not be locked.
    #[error("the store failed")]
    Store(#[from] narfs_store::Error),
    /// The HTTP client's runtime could not start.
    #[error("cannot start the HTTP client")]
    Runtime(#[source] io::Error),
}

/// A whole answer: status, content type, body, and `X-Stream-Error` if Kubo failed
/// after starting to answer.
struct Answer {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
    stream_error: Option<String>,
}

impl Kubo {
    /// Parses `api` (`http://HOST[:PORT]`, port 5001 by default) and checks that a Kubo
    /// RPC API answers there.
    pub fn connect(api: &str) -> Result<Kubo, KuboError> {
        let (authority, prefix) = parse_api(api)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(KuboError::Runtime)?;
        let mut kubo = Kubo {
            api: api.trim_end_matches('/').to_string(),
            authority,
            prefix,
            version: String::new(),
            runtime,
        };
        let answer = kubo.call("version", "", None, Empty::<Bytes>::new())?;
        let v = kubo.json(&answer, "version").ok();
        match v.as_ref().and_then(|v| v["Version"].as_str()) {
            Some(version) => kubo.version = version.to_string(),
            None => {
                return Err(KuboError::NotKubo {
                    api: kubo.api.clone(),
                    what: format!("POST /api/v0/version answered {}", describe(&answer)),
                })
            }
        }
        Ok(kubo)
    }

    /// The node's version (`ipfs version`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The API address, as given.
    pub fn api(&self) -> &str {
        &self.api
    }

    /// Whether the node pins `root` recursively (so holds its whole DAG).
    pub fn is_pinned(&self, root: &Cid) -> Result<bool, KuboError> {
        let query = format!("?arg={root}&type=recursive");
        let answer = self.call("pin/ls", &query, None, Empty::<Bytes>::new())?;
        if answer.status != StatusCode::OK {
            // Kubo says "path '…' is not pinned" with a 500: the only way it says no.
            let message = node_message(&answer).unwrap_or_default();
            if message.contains("not pinned") {
                return Ok(false);
            }
        }
        let v = self.json(&answer, "pin/ls")?;
        Ok(v["Keys"].as_object().is_some_and(|keys| !keys.is_empty()))
    }

    /// Publishes the DAG under `root` from `source`: nothing if the node pins it
    /// already, else its CAR streamed into `dag/import`, the root pinned.
    pub fn publish<S: BlockSource + Sync>(
        &self,
        source: &S,
        root: &Cid,
    ) -> Result<Published, KuboError> {
        if self.is_pinned(root)? {
            return Ok(Published {
                already_pinned: true,
                ..Published::default()
            });
        }
        let boundary = boundary_of(root);
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let (tx, body) = Channel::<Bytes, io::Error>::new(DEPTH);
        let handle = self.runtime.handle().clone();
        let (fed, answer) = std::thread::scope(|s| {
            let feeder = s.spawn(move || feed(source, root, &boundary, tx, handle));
            let answer = self.call(
                "dag/import",
                "?pin-roots=true&stats=true",
                Some(&content_type),
                body,
            );
            (feeder.join(), answer)
        });
        let fed = fed.unwrap_or_else(|_| Err(Feed::Panicked));
        // A DAG that could not be read is the real cause of a cut request.
        let sent = match fed {
            Err(Feed::Export(e)) => return Err(KuboError::Export(e)),
            Err(Feed::Panicked) => {
                return Err(KuboError::Runtime(io::Error::other(
                    "the CAR writer panicked",
                )))
            }
            Err(Feed::Gone) => None,
            Ok(sent) => Some(sent),
        };
        let answer = answer?;
        let published = self.imported(&answer, root)?;
        match sent {
            Some(sent) => Ok(Published { sent, ..published }),
            None => Err(KuboError::Answer {
                call: "dag/import",
                what: "the node answered before reading the whole CAR".into(),
            }),
        }
    }

    /// What `dag/import` reported for `root`.
    fn imported(&self, answer: &Answer, root: &Cid) -> Result<Published, KuboError> {
        if answer.status != StatusCode::OK {
            return Err(self.refused(answer, "dag/import"));
        }
        if let Some(message) = &answer.stream_error {
            return Err(KuboError::Node {
                message: message.clone(),
            });
        }
        let mut published = Published::default();
        let mut pinned = false;
        for line in answer.body.split(|&b| b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let v: Value = serde_json::from_slice(line).map_err(|e| KuboError::Answer {
                call: "dag/import",
                what: format!("not JSON ({e})"),
            })?;
            if let Some(r) = v.get("Root") {
                if r["Cid"]["/"].as_str() != Some(&root.to_string()) {
                    return Err(KuboError::Answer {
                        call: "dag/import",
                        what: format!("a root that was not sent: {}", r["Cid"]),
                    });
                }
                match r["PinErrorMsg"].as_str() {
                    Some("") | None => pinned = true,
                    Some(message) => {
                        return Err(KuboError::Pin {
                            message: message.to_string(),
                        })
                    }
                }
            } else if let Some(s) = v.get("Stats") {
                published.node_blocks = s["BlockCount"].as_u64().unwrap_or_default();
                published.node_block_bytes = s["BlockBytesCount"].as_u64().unwrap_or_default();
            }
        }
        if !pinned {
            return Err(KuboError::Answer {
                call: "dag/import",
                what: "no pinned root reported".into(),
            });
        }
        Ok(published)
    }

    /// `POST /api/v0/CALL?QUERY` with `body`, its whole answer read (bounded).
    fn call<B>(
        &self,
        call: &'static str,
        query: &str,
        content_type: Option<&str>,
        body: B,
    ) -> Result<Answer, KuboError>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let uri = format!("{}/api/v0/{call}{query}", self.prefix);
        let mut request = Request::post(uri).header(header::HOST, &self.authority);
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        let request = request.body(body).map_err(|e| KuboError::Answer {
            call,
            what: format!("cannot build the request ({e})"),
        })?;
        let http = |source| KuboError::Http {
            api: self.api.clone(),
            source,
        };
        self.runtime.block_on(async {
            let (mut sender, conn) =
                crate::http::connect(&self.authority)
                    .await
                    .map_err(|e| match e {
                        crate::http::ConnectError::Tcp(source) => KuboError::Connect {
                            api: self.api.clone(),
                            source,
                        },
                        crate::http::ConnectError::Http(source) => http(source),
                    })?;
            let response = sender.send_request(request).await.map_err(http)?;
            let (parts, mut body) = response.into_parts();
            let mut answer = Answer {
                status: parts.status,
                content_type: parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string(),
                body: Vec::new(),
                stream_error: None,
            };
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(http)?;
                if let Some(data) = frame.data_ref() {
                    if answer.body.len() + data.len() > MAX_ANSWER {
                        return Err(KuboError::Answer {
                            call,
                            what: format!("more than {MAX_ANSWER} bytes"),
                        });
                    }
                    answer.body.extend_from_slice(data);
                } else if let Some(trailers) = frame.trailers_ref() {
                    answer.stream_error = trailers
                        .get("X-Stream-Error")
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                }
            }
            drop(sender);
            let _ = conn.await;
            Ok(answer)
        })
    }

    /// The JSON body of a successful answer to `call`.
    fn json(&self, answer: &Answer, call: &'static str) -> Result<Value, KuboError> {
        if answer.status != StatusCode::OK {
            return Err(self.refused(answer, call));
        }
        if let Some(message) = &answer.stream_error {
            return Err(KuboError::Node {
                message: message.clone(),
            });
        }
        serde_json::from_slice(&answer.body).map_err(|e| KuboError::Answer {
            call,
            what: format!("not JSON ({e})"),
        })
    }

    /// The error a non-200 answer means: Kubo's own message, or not Kubo at all.
    fn refused(&self, answer: &Answer, call: &'static str) -> KuboError {
        match node_message(answer) {
            Some(message) => KuboError::Node { message },
            None => KuboError::NotKubo {
                api: self.api.clone(),
                what: format!("POST /api/v0/{call} answered {}", describe(answer)),
            },
        }
    }
}

/// [`Kubo::publish`] from a store, holding its lock shared so `gc` cannot run meanwhile.
pub fn publish_store(kubo: &Kubo, store: &Store, root: &Cid) -> Result<Published, KuboError> {
    let _lock = store.lock_shared()?;
    kubo.publish(store, root)
}

/// `http://HOST[:PORT][/PREFIX]` (port 5001 by default) → (`HOST:PORT`, `/PREFIX`).
fn parse_api(api: &str) -> Result<(String, String), KuboError> {
    crate::http::parse_url(api, 5001).ok_or_else(|| KuboError::Url { url: api.into() })
}

/// Kubo's error object (`{"Message": …, "Code": …, "Type": "error"}`), if that is what
/// the answer carries.
fn node_message(answer: &Answer) -> Option<String> {
    let v: Value = serde_json::from_slice(&answer.body).ok()?;
    (v["Type"] == "error").then(|| v["Message"].as_str().map(str::to_string))?
}

/// "404 Not Found (text/html)", for a message.
fn describe(answer: &Answer) -> String {
    let ct = match answer.content_type.as_str() {
        "" => String::new(),
        ct => format!(" ({ct})"),
    };
    format!("{}{ct}", answer.status)
}

#[path = "kubo_body.rs"]
mod body;

#[cfg(test)]
#[path = "kubo_tests.rs"]
mod tests;
