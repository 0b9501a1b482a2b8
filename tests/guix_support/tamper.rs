//! An HTTP relay on 127.0.0.1 that alters what it passes: a NAR, a narinfo, or every
//! block a gateway answers. One request per connection (the client's `Connection`
//! is not kept), the answer read whole from the upstream (HTTP/1.0) and sent back with
//! its length; its threads end with the test process.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

#[derive(Clone)]
pub enum Tamper {
    /// Flip a bit in the first occurrence of these bytes in a NAR (`/nar/…`).
    Nar(Vec<u8>),
    /// Replace a narinfo's `NarHash:` line with this one.
    NarInfo(String),
    /// Flip a bit in the last byte of every `/ipfs/…` answer (a raw block, a CAR).
    Blocks,
}

/// A relay in front of `upstream` that tampers as said; its URL.
pub fn relay(upstream: SocketAddr, tamper: Tamper) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let tamper = tamper.clone();
            std::thread::spawn(move || pass(conn, upstream, &tamper));
        }
    });
    url
}

fn pass(mut conn: TcpStream, upstream: SocketAddr, tamper: &Tamper) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let accept = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("accept")
                .then(|| v.trim().to_string())
        })
        .map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    let Ok(mut up) = TcpStream::connect(upstream) else {
        return;
    };
    let _ = up.set_read_timeout(Some(Duration::from_secs(60)));
    let _ = write!(
        up,
        "GET {target} HTTP/1.0\r\nHost: {upstream}\r\n{accept}\r\n"
    );
    let mut resp = Vec::new();
    let _ = up.read_to_end(&mut resp);
    let Some(end) = resp.windows(4).position(|w| w == b"\r\n\r\n") else {
        return;
    };
    let Some(eol) = resp.iter().position(|&c| c == b'\r') else {
        return;
    };
    let status_line = String::from_utf8_lossy(&resp[..eol]).into_owned();
    let content_type = String::from_utf8_lossy(&resp[..end])
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| "text/plain".into());
    let mut body = resp[end + 4..].to_vec();
    match tamper {
        Tamper::Nar(needle) if target.starts_with("/nar/") => {
            if let Some(i) = body.windows(needle.len()).position(|w| w == &needle[..]) {
                body[i] ^= 0x02;
            }
        }
        Tamper::NarInfo(line) if target.ends_with(".narinfo") => {
            let text = String::from_utf8_lossy(&body).into_owned();
            let text: Vec<String> = text
                .lines()
                .map(|l| {
                    if l.starts_with("NarHash:") {
                        line.clone()
                    } else {
                        l.to_string()
                    }
                })
                .collect();
            body = (text.join("\n") + "\n").into_bytes();
        }
        Tamper::Blocks if target.starts_with("/ipfs/") && status_line.contains(" 200") => {
            if let Some(last) = body.last_mut() {
                *last ^= 0x01;
            }
        }
        _ => {}
    }
    let _ = write!(
        conn,
        "{status_line}\r\nContent-Length: {}\r\nContent-Type: {content_type}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(&body);
}
