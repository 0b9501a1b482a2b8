//! `narfs key generate` checked by the real tools that will read its keys:
//! - Nix: real `nix key convert-secret-to-public` gives the public key narfs wrote, and
//!   real `nix copy --from` a `narfs serve --sign-key` of an item narfs encoded itself
//!   succeeds with only that key in `trusted-public-keys` (signatures checked), and
//!   fails with another narfs key trusted instead;
//! - Guix: `guix archive --authorize` takes the public file narfs wrote, and the real
//!   Guix daemon substitutes an item `narfs serve --sign-key` signed with the secret
//!   (and refuses it signed by another narfs key it did not authorize).
//!
//! And the files: the secret mode 0600, never written over an existing file.

mod common;
mod guix_support;
mod serve_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{narfs, nix, ok_text as ok};
use guix_support::{base, delete, guix, guix_dir, repl, substitute, valid, Acl};
use serve_support::Server;

fn generate(args: &[&str], secret: &Path, public: &Path) -> std::process::Output {
    narfs()
        .args(["key", "generate"])
        .args(args)
        .arg("-o")
        .arg(secret)
        .arg("--public")
        .arg(public)
        .output()
        .unwrap()
}

#[test]
fn key_files_are_private_and_never_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let (sk, pk) = (tmp.path().join("sk"), tmp.path().join("pk"));
    let out = generate(&["--dialect", "nix", "k-1"], &sk, &pk);
    assert!(out.status.success(), "{out:?}");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&sk), 0o600);
    let (secret, public) = (std::fs::read(&sk).unwrap(), std::fs::read(&pk).unwrap());
    // Again over the same files, and with only the public one there: refused, and
    // nothing written or left behind.
    let other = tmp.path().join("sk2");
    for (s, what) in [(&sk, "sk"), (&other, "pk")] {
        let out = generate(&["--dialect", "guix"], s, &pk);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("{what} already exists")), "{err}");
    }
    assert_eq!(std::fs::read(&sk).unwrap(), secret);
    assert_eq!(std::fs::read(&pk).unwrap(), public);
    let mut names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["pk", "sk"]);
    // Without --public, the public key is printed; a Guix one is an S-expression.
    let out = narfs()
        .args(["key", "generate", "--dialect", "guix", "-o"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("(public-key"));
    assert_eq!(mode(&other), 0o600);
    assert!(std::fs::read_to_string(&other)
        .unwrap()
        .starts_with("(private-key"));
    // A Nix key needs a usable name.
    for args in [&["--dialect", "nix"][..], &["--dialect", "nix", "a:b"]] {
        let out = generate(args, &tmp.path().join("x"), &tmp.path().join("y"));
        assert!(!out.status.success(), "{args:?}");
        assert!(!tmp.path().join("x").exists());
    }
}

#[test]
fn nix_copies_what_a_narfs_key_signed() {
    if !common::have("nix") || !common::have("nix-store") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (sk, pk) = (t.join("sk"), t.join("pk"));
    let out = generate(&["--dialect", "nix", "narfs-keygen-1"], &sk, &pk);
    assert!(out.status.success(), "{out:?}");
    let public = std::fs::read_to_string(&pk).unwrap();
    let converted = ok(nix(t, "nix")
        .args(["key", "convert-secret-to-public"])
        .stdin(std::fs::File::open(&sk).unwrap()));
    assert_eq!(
        converted,
        public.trim(),
        "real Nix reads narfs's secret key"
    );

    // An item in a Nix store, encoded by narfs itself.
    let s1 = t.join("s1");
    let file = t.join("signed.txt");
    std::fs::write(&file, "signed by a narfs key\n").unwrap();
    let path = ok(nix(t, "nix-store")
        .args(["--store", s1.to_str().unwrap(), "--add"])
        .arg(&file));
    // Its NAR, as `nix-store --dump` writes it (the chroot store's file is the same).
    let nar = t.join("signed.nar");
    std::fs::write(&nar, serve_support::nar_of(&s1.join(&path[1..]))).unwrap();
    let store = t.join("store");
    ok(narfs()
        .args(["encode", "--store"])
        .arg(&store)
        .args(["--store-path", &path])
        .arg(&nar));
    let srv = Server::start_with(&store, &["--sign-key".as_ref(), sk.as_os_str()]);

    // Another narfs key trusted: real Nix refuses the path.
    let (sk2, pk2) = (t.join("sk2"), t.join("pk2"));
    assert!(
        generate(&["--dialect", "nix", "narfs-keygen-2"], &sk2, &pk2)
            .status
            .success()
    );
    let copy = |trusted: &str| {
        nix(t, "nix")
            .args(["--store", t.join("s2").to_str().unwrap()])
            .args([
                "copy",
                "--from",
                &srv.url,
                "--trusted-public-keys",
                trusted,
                &path,
            ])
            .output()
            .unwrap()
    };
    let refused = copy(std::fs::read_to_string(&pk2).unwrap().trim());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "copied with another key trusted");
    assert!(err.contains("signature"), "{err}");
    eprintln!("--- Nix with another key trusted:\n{}", err.trim());
    let copied = copy(public.trim());
    assert!(
        copied.status.success(),
        "{}",
        String::from_utf8_lossy(&copied.stderr)
    );
    let sigs = ok(nix(t, "nix").args([
        "--store",
        t.join("s2").to_str().unwrap(),
        "path-info",
        "--sigs",
        &path,
    ]));
    assert!(sigs.contains("narfs-keygen-1:"), "{sigs}");
}

#[test]
fn guix_substitutes_what_a_narfs_key_signed() {
    let Some(dir) = guix_dir() else { return };
    let (work, inside) = guix_support::work_dir(&dir, "narfs-guix-keygen-");
    let (sk, pk) = (work.path().join("narfs.sec"), work.path().join("narfs.pub"));
    let out = generate(&["--dialect", "guix"], &sk, &pk);
    assert!(out.status.success(), "{out:?}");
    let _acl = Acl::authorize(&dir, &[format!("{inside}/narfs.pub").as_str()]);
    let acl = std::fs::read_to_string(dir.join("root/etc/guix/acl")).unwrap();
    let q = std::fs::read_to_string(&pk).unwrap();
    let q = q.split('#').nth(1).unwrap();
    assert!(
        acl.contains(q),
        "guix archive --authorize did not take the key: {acl}"
    );

    let pid = std::process::id();
    let (ok_, err) = repl(
        &dir,
        work.path(),
        &inside,
        "mk.scm",
        &format!(
            r#"(use-modules (guix store) (guix serialization))
(with-store s
  (let ((p (add-text-to-store s "keygen.txt" "signed by a narfs key {pid}\n")))
    (call-with-output-file "{inside}/path" (lambda (port) (display p port)))
    (call-with-output-file "{inside}/item.nar" (lambda (port) (write-file p port)))))
"#
        ),
    );
    assert!(ok_, "{err}");
    let path = std::fs::read_to_string(work.path().join("path")).unwrap();
    let store = work.path().join("store");
    ok(narfs()
        .args(["encode", "--store"])
        .arg(&store)
        .args(["--store-path", &path])
        .arg(work.path().join("item.nar")));
    let want = guix(&dir, &["guix", "hash", "-S", "nar", &path]);
    delete(&dir, &[&path]);
    // Signed with another narfs key, not authorized: the daemon refuses it.
    let (sk2, pk2) = (work.path().join("other.sec"), work.path().join("other.pub"));
    assert!(generate(&["--dialect", "guix"], &sk2, &pk2)
        .status
        .success());
    let other = Server::start_with(&store, &["--sign-key".as_ref(), sk2.as_os_str()]);
    let (done, err) = substitute(&dir, work.path(), &inside, &other.url, &path);
    eprintln!("--- Guix on a key it did not authorize:\n{}", err.trim());
    assert!(
        !done && !valid(&dir, &path),
        "substituted with an unauthorized key"
    );
    drop(other);
    let server = Server::start_with(&store, &["--sign-key".as_ref(), sk.as_os_str()]);
    let (done, err) = substitute(&dir, work.path(), &inside, &server.url, &path);
    assert!(
        done && valid(&dir, &path),
        "{} not substituted from narfs: {err}",
        base(&path)
    );
    assert_eq!(guix(&dir, &["guix", "hash", "-S", "nar", &path]), want);
}
