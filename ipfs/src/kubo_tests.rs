//! The RPC client against a fake node on loopback (a `std::net::TcpListener` thread
//! answering what Kubo answers); the real Kubo is in `tests/kubo_publish.rs`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use narfs_core::block::{cid_for, BlockSink, HashAlg, MemoryStore, DAG_PB, RAW};
use narfs_core::car::CarReader;
use narfs_core::dagpb::{PBLink, PBNode};

use super::*;

/// One request as the fake node saw it: path and query, content type, body (`None`
/// when the body was cut).
#[derive(Clone, Debug)]
struct Seen {
    target: String,
    content_type: String,
    body: Option<Vec<u8>>,
}

type Reply = (u16, &'static str, String, Option<&'static str>);

/// A fake node answering each request with `reply(target, body)`: status, content
/// type, body, and an `X-Stream-Error` trailer. Returns its URL and what it saw.
fn fake_node(
    reply: impl Fn(&str, Option<&[u8]>) -> Reply + Send + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            serve_one(conn, &reply, &log);
        }
    });
    (url, seen)
}

/// Reads one request, logs it (before answering: the client may look right after),
/// answers.
fn serve_one(
    conn: TcpStream,
    reply: &impl Fn(&str, Option<&[u8]>) -> Reply,
    log: &Mutex<Vec<Seen>>,
) {
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let target = line.split(' ').nth(1).unwrap_or_default().to_string();
    let (mut content_type, mut chunked, mut len) = (String::new(), false, 0usize);
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if l.starts_with("content-type: ") {
            content_type = line.trim_end()["content-type: ".len()..].to_string();
        }
        chunked |= l == "transfer-encoding: chunked";
        if let Some(v) = l.strip_prefix("content-length: ") {
            len = v.parse().unwrap();
        }
    }
    let body = if chunked {
        dechunk(&mut r)
    } else {
        let mut b = vec![0; len];
        r.read_exact(&mut b).ok().map(|()| b)
    };
    let (status, ct, text, trailer) = reply(&target, body.as_deref());
    log.lock().unwrap().push(Seen {
        target,
        content_type,
        body,
    });
    let mut w = conn;
    let head = format!("HTTP/1.1 {status} X\r\nContent-Type: {ct}\r\nConnection: close\r\n");
    let _ = match trailer {
        None => write!(w, "{head}Content-Length: {}\r\n\r\n{text}", text.len()),
        Some(t) => write!(
            w,
            "{head}Transfer-Encoding: chunked\r\nTrailer: X-Stream-Error\r\n\r\n\
             {:x}\r\n{text}\r\n0\r\nX-Stream-Error: {t}\r\n\r\n",
            text.len()
        ),
    };
}

/// A chunked body, or `None` if it was cut before its last chunk.
fn dechunk(r: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        if r.read_line(&mut size).ok()? == 0 {
            return None;
        }
        let n = usize::from_str_radix(size.trim(), 16).ok()?;
        let mut chunk = vec![0; n + 2];
        r.read_exact(&mut chunk).ok()?;
        if n == 0 {
            return Some(body);
        }
        body.extend_from_slice(&chunk[..n]);
    }
}

const VERSION: &str = r#"{"Version":"0.43.1","Commit":"","Repo":"18"}"#;
const NOT_PINNED: &str = r#"{"Message":"path 'x' is not pinned","Code":0,"Type":"error"}"#;

/// Kubo's answers, with `import` for `dag/import`.
fn kubo(import: impl Fn(&[u8]) -> Reply + Send + 'static) -> (String, Arc<Mutex<Vec<Seen>>>) {
    fake_node(move |target, body| {
        if target.starts_with("/api/v0/version") {
            (200, "application/json", VERSION.into(), None)
        } else if target.starts_with("/api/v0/pin/ls") {
            (500, "application/json", NOT_PINNED.into(), None)
        } else if target.starts_with("/api/v0/dag/import") {
            match body {
                Some(b) => import(b),
                None => (400, "text/plain", "cut".into(), None),
            }
        } else {
            (404, "text/plain", "404 page not found".into(), None)
        }
    })
}

/// A two-leaf DAG (one leaf twice) in memory.
fn dag() -> (MemoryStore, Cid) {
    let mut m = MemoryStore::new();
    let a = cid_for(RAW, HashAlg::Sha2_256, b"leaf a");
    let b = cid_for(RAW, HashAlg::Sha2_256, &[7; 300_000]);
    m.put(&a, b"leaf a").unwrap();
    m.put(&b, &[7; 300_000]).unwrap();
    let link = |hash| PBLink {
        hash,
        name: None,
        tsize: None,
    };
    let node = PBNode {
        links: vec![link(a), link(b), link(a)],
        data: None,
    }
    .encode();
    let root = cid_for(DAG_PB, HashAlg::Sha2_256, &node);
    m.put(&root, &node).unwrap();
    (m, root)
}

fn root_line(root: &Cid, pin_error: &str) -> String {
    format!(
        "{{\"Root\":{{\"Cid\":{{\"/\":\"{root}\"}},\"PinErrorMsg\":\"{pin_error}\"}}}}\n\
         {{\"Stats\":{{\"BlockCount\":3,\"BlockBytesCount\":300100}}}}\n"
    )
}

#[test]
fn publish_streams_the_car_as_one_multipart_part() {
    let (source, root) = dag();
    let line = root_line(&root, "");
    let (url, seen) = kubo(move |_| (200, "application/json", line.clone(), None));
    let kubo = Kubo::connect(&url).unwrap();
    assert_eq!(kubo.version(), "0.43.1");
    let published = kubo.publish(&source, &root).unwrap();
    assert!(!published.already_pinned);
    assert_eq!(published.sent.blocks, 3);
    assert_eq!(
        (published.node_blocks, published.node_block_bytes),
        (3, 300100)
    );

    let seen = seen.lock().unwrap();
    let import = seen
        .iter()
        .find(|s| s.target.contains("dag/import"))
        .unwrap();
    assert!(import.target.contains("pin-roots=true"));
    let boundary = import
        .content_type
        .strip_prefix("multipart/form-data; boundary=")
        .unwrap();
    let body = import.body.as_deref().unwrap();
    let head_end = body.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = std::str::from_utf8(&body[..head_end]).unwrap();
    assert!(head.starts_with(&format!("--{boundary}\r\n")));
    assert!(head.contains("name=\"file\""));
    let tail = format!("\r\n--{boundary}--\r\n");
    assert!(body.ends_with(tail.as_bytes()));
    let car = &body[head_end..body.len() - tail.len()];
    assert_eq!(car.len() as u64, published.sent.bytes);
    let mut reader = CarReader::new(car).unwrap();
    assert_eq!(reader.roots(), &[root]);
    let mut n = 0;
    while let Some((cid, data)) = reader.next_block().unwrap() {
        assert_eq!(source.get_ref(&cid).unwrap(), &data[..]);
        n += 1;
    }
    assert_eq!(n, 3);
}

#[test]
fn a_pinned_root_is_not_sent_again() {
    let (source, root) = dag();
    let pinned = format!("{{\"Keys\":{{\"{root}\":{{\"Type\":\"recursive\"}}}}}}");
    let (url, seen) = fake_node(move |target, _| match target {
        t if t.starts_with("/api/v0/version") => (200, "application/json", VERSION.into(), None),
        t if t.starts_with("/api/v0/pin/ls") => (200, "application/json", pinned.clone(), None),
        _ => (500, "text/plain", "unexpected".into(), None),
    });
    let published = Kubo::connect(&url)
        .unwrap()
        .publish(&source, &root)
        .unwrap();
    assert!(published.already_pinned);
    assert_eq!(published.sent, Exported::default());
    assert!(!seen
        .lock()
        .unwrap()
        .iter()
        .any(|s| s.target.contains("dag/import")));
}

#[test]
fn a_pin_error_fails_the_publish() {
    let (source, root) = dag();
    let line = root_line(&root, "pin: out of space");
    let (url, _) = kubo(move |_| (200, "application/json", line.clone(), None));
    let err = Kubo::connect(&url)
        .unwrap()
        .publish(&source, &root)
        .unwrap_err();
    assert!(
        matches!(&err, KuboError::Pin { message } if message == "pin: out of space"),
        "{err:?}"
    );
}

#[test]
fn a_refused_import_carries_the_nodes_message() {
    let (source, root) = dag();
    let (url, _) = kubo(|_| {
        let e = r#"{"Message":"import failed at block \"b\": too big","Code":0,"Type":"error"}"#;
        (500, "application/json", e.into(), None)
    });
    let err = Kubo::connect(&url)
        .unwrap()
        .publish(&source, &root)
        .unwrap_err();
    assert!(
        matches!(&err, KuboError::Node { message } if message.contains("too big")),
        "{err:?}"
    );
}

#[test]
fn an_error_after_the_answer_began_is_an_error() {
    let (source, root) = dag();
    let stats = r#"{"Stats":{"BlockCount":3,"BlockBytesCount":300100}}"#;
    let (url, _) = kubo(|_| (200, "application/json", stats.into(), Some("flush failed")));
    let err = Kubo::connect(&url)
        .unwrap()
        .publish(&source, &root)
        .unwrap_err();
    assert!(
        matches!(&err, KuboError::Node { message } if message == "flush failed"),
        "{err:?}"
    );
}

#[test]
fn a_missing_block_cuts_the_request_and_names_the_block() {
    let (mut source, root) = dag();
    let leaf = cid_for(RAW, HashAlg::Sha2_256, &[7; 300_000]);
    source.remove(&leaf);
    let line = root_line(&root, "");
    let (url, seen) = kubo(move |_| (200, "application/json", line.clone(), None));
    let err = Kubo::connect(&url)
        .unwrap()
        .publish(&source, &root)
        .unwrap_err();
    assert!(matches!(err, KuboError::Export(_)), "{err:?}");
    // The node never received a whole body: the chunked request was cut.
    let seen = seen.lock().unwrap();
    let import = seen.iter().find(|s| s.target.contains("dag/import"));
    assert!(import.is_none_or(|s| s.body.is_none()), "{import:?}");
}

#[test]
fn something_else_than_kubo_is_named_as_such() {
    let (url, _) = fake_node(|_, _| (404, "text/html", "<html>nope</html>".into(), None));
    let err = Kubo::connect(&url).err().unwrap();
    assert!(
        matches!(&err, KuboError::NotKubo { what, .. } if what.contains("404")),
        "{err:?}"
    );
    let (url, _) = fake_node(|_, _| (200, "text/html", "<html>hello</html>".into(), None));
    let err = Kubo::connect(&url).err().unwrap();
    assert!(matches!(err, KuboError::NotKubo { .. }), "{err:?}");
}

#[test]
fn nothing_listening_is_a_connect_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Kubo::connect(&format!("http://127.0.0.1:{port}"))
        .err()
        .unwrap();
    assert!(matches!(err, KuboError::Connect { .. }), "{err:?}");
}

#[test]
fn api_addresses() {
    let ok = |s: &str| parse_api(s).unwrap();
    assert_eq!(
        ok("http://127.0.0.1:5001"),
        ("127.0.0.1:5001".into(), "".into())
    );
    assert_eq!(
        ok("http://localhost/"),
        ("localhost:5001".into(), "".into())
    );
    assert_eq!(
        ok("http://[::1]:8080/kubo/"),
        ("[::1]:8080".into(), "/kubo".into())
    );
    for bad in [
        "https://127.0.0.1:5001",
        "127.0.0.1:5001",
        "http://u@h:1",
        "http://h:1/?x=1",
        "",
    ] {
        assert!(
            matches!(parse_api(bad), Err(KuboError::Url { .. })),
            "{bad}"
        );
    }
}
