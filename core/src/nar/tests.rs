//! Unit tests of the NAR grammar: roundtrips, one negative test per grammar rule.

use super::token::put;
use super::*;
use proptest::prelude::*;

/// A tree, as the NAR model sees it.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    File(bool, Vec<u8>),
    Symlink(Vec<u8>),
    Dir(Vec<(Vec<u8>, Node)>),
}

pub(crate) fn write_tree(node: &Node) -> Vec<u8> {
    fn go(w: &mut NarWriter<&mut Vec<u8>>, name: &[u8], node: &Node) {
        match node {
            Node::File(x, data) => w.file(name, *x, data.len() as u64, &mut &data[..]).unwrap(),
            Node::Symlink(t) => w.symlink(name, t).unwrap(),
            Node::Dir(entries) => {
                w.directory(name).unwrap();
                for (n, child) in entries {
                    go(w, n, child);
                }
                w.end_directory().unwrap();
            }
        }
    }
    let mut out = Vec::new();
    let mut w = NarWriter::new(&mut out);
    go(&mut w, b"", node);
    w.finish().unwrap();
    out
}

/// Reads a NAR and writes it again from the events.
pub(crate) fn reserialise(nar: &[u8]) -> Result<Vec<u8>, NarError> {
    let mut r = NarReader::new(nar);
    let mut out = Vec::new();
    let mut w = NarWriter::new(&mut out);
    while let Some(ev) = r.next()? {
        match ev {
            Event::Directory { name } => w.directory(name)?,
            Event::DirectoryEnd => w.end_directory()?,
            Event::Symlink { name, target } => w.symlink(name, target)?,
            Event::File {
                name,
                executable,
                size,
                mut contents,
            } => w.file(name, executable, size, &mut contents)?,
        }
    }
    w.finish()?;
    Ok(out)
}

fn arb_name() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        any::<u8>().prop_filter("no / or NUL", |b| *b != b'/' && *b != 0),
        1..12,
    )
    .prop_filter("not . or ..", |n| n != b"." && n != b"..")
}

pub(crate) fn arb_tree() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        (any::<bool>(), prop::collection::vec(any::<u8>(), 0..300))
            .prop_map(|(x, d)| Node::File(x, d)),
        prop::collection::vec(1u8..=255, 1..40).prop_map(Node::Symlink),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop::collection::btree_map(arb_name(), inner, 0..8)
            .prop_map(|m| Node::Dir(m.into_iter().collect()))
    })
}

proptest! {
    #[test]
    fn write_read_write_is_identity(tree in arb_tree()) {
        let nar = write_tree(&tree);
        prop_assert_eq!(reserialise(&nar).unwrap(), nar);
    }

    #[test]
    fn truncation_is_an_error(tree in arb_tree(), cut in any::<prop::sample::Index>()) {
        let nar = write_tree(&tree);
        let at = cut.index(nar.len());
        prop_assert!(reserialise(&nar[..at]).is_err());
    }
}

fn s(items: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for i in items {
        put(&mut out, i);
    }
    out
}

fn err(nar: &[u8]) -> String {
    reserialise(nar).unwrap_err().to_string()
}

#[test]
fn the_smallest_nars_parse() {
    let file = s(&[
        b"nix-archive-1",
        b"(",
        b"type",
        b"regular",
        b"contents",
        b"hi",
        b")",
    ]);
    assert_eq!(reserialise(&file).unwrap(), file);
    let exe = s(&[
        b"nix-archive-1",
        b"(",
        b"type",
        b"regular",
        b"executable",
        b"",
        b"contents",
        b"",
        b")",
    ]);
    assert_eq!(reserialise(&exe).unwrap(), exe);
    let link = s(&[
        b"nix-archive-1",
        b"(",
        b"type",
        b"symlink",
        b"target",
        b"/x",
        b")",
    ]);
    assert_eq!(reserialise(&link).unwrap(), link);
    let dir = s(&[b"nix-archive-1", b"(", b"type", b"directory", b")"]);
    assert_eq!(reserialise(&dir).unwrap(), dir);
}

#[test]
fn each_grammar_rule_is_enforced() {
    let head: &[&[u8]] = &[b"nix-archive-1", b"(", b"type", b"directory"];
    fn entry(name: &[u8]) -> Vec<&[u8]> {
        vec![
            b"entry", b"(", b"name", name, b"node", b"(", b"type", b"symlink", b"target", b"t",
            b")", b")",
        ]
    }
    let dir_with = |names: &[&'static [u8]]| {
        let mut v: Vec<&[u8]> = head.to_vec();
        for n in names {
            v.extend(entry(n));
        }
        v.push(b")");
        s(&v)
    };
    assert!(err(&s(&[b"nix-archive-2"])).contains("magic"));
    assert!(err(&s(&[b"nix-archive-1", b"["])).contains("`(`"));
    assert!(err(&s(&[b"nix-archive-1", b"(", b"kind"])).contains("`type`"));
    assert!(err(&s(&[b"nix-archive-1", b"(", b"type", b"fifo"]))
        .contains("`regular`, `symlink` or `directory`"));
    assert!(err(&s(&[
        b"nix-archive-1",
        b"(",
        b"type",
        b"regular",
        b"executable",
        b"x"
    ]))
    .contains("empty string"));
    assert!(err(&s(&[
        b"nix-archive-1",
        b"(",
        b"type",
        b"regular",
        b"content"
    ]))
    .contains("`executable` or `contents`"));
    assert!(err(&s(&[b"nix-archive-1", b"(", b"type", b"symlink", b"targe"])).contains("`target`"));
    assert!(err(&s(&[
        b"nix-archive-1",
        b"(",
        b"type",
        b"symlink",
        b"target",
        b"",
        b")"
    ]))
    .contains("empty"));
    assert!(err(&s(&[
        b"nix-archive-1",
        b"(",
        b"type",
        b"directory",
        b"entri"
    ]))
    .contains("`entry` or `)`"));
    assert!(err(&dir_with(&[b"b", b"a"])).contains("strictly increasing"));
    assert!(err(&dir_with(&[b"a", b"a"])).contains("strictly increasing"));
    assert!(err(&dir_with(&[b""])).contains("empty name"));
    assert!(err(&dir_with(&[b"."])).contains("`.` or `..`"));
    assert!(err(&dir_with(&[b".."])).contains("`.` or `..`"));
    assert!(err(&dir_with(&[b"a/b"])).contains("`/`"));
    assert!(err(&dir_with(&[b"a\0b"])).contains("NUL"));
    // Trailing bytes after the root.
    let mut trailing = dir_with(&[b"a"]);
    trailing.push(0);
    assert!(err(&trailing).contains("trailing"));
    // Non-zero padding.
    let mut bad_pad = s(&[
        b"nix-archive-1",
        b"(",
        b"type",
        b"regular",
        b"contents",
        b"hi",
        b")",
    ]);
    let pad_at = bad_pad.len() - 16 - 1;
    bad_pad[pad_at] = 1;
    assert!(err(&bad_pad).contains("padding"));
}

#[test]
fn huge_lengths_are_refused_before_allocating() {
    let mut nar = s(&[
        b"nix-archive-1",
        b"(",
        b"type",
        b"directory",
        b"entry",
        b"(",
        b"name",
    ]);
    nar.extend_from_slice(&(1u64 << 63).to_le_bytes());
    assert!(err(&nar).contains("over the limit"));
    let mut nar = s(&[b"nix-archive-1", b"(", b"type", b"regular", b"contents"]);
    nar.extend_from_slice(&(1u64 << 63).to_le_bytes());
    nar.extend_from_slice(b"abc");
    assert!(err(&nar).contains("truncated"));
    let mut nar = s(&[b"nix-archive-1", b"("]);
    nar.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(err(&nar).contains("a string of"));
    // A 1 MiB name.
    let name = vec![b'a'; 1 << 20];
    let nar = s(&[
        b"nix-archive-1",
        b"(",
        b"type",
        b"directory",
        b"entry",
        b"(",
        b"name",
        &name,
    ]);
    assert!(err(&nar).contains("over the limit"));
}

#[test]
fn deep_nesting_is_bounded_not_a_stack_overflow() {
    let depth = 100_000;
    let mut nar = s(&[b"nix-archive-1"]);
    for _ in 0..depth {
        nar.extend(s(&[
            b"(",
            b"type",
            b"directory",
            b"entry",
            b"(",
            b"name",
            b"d",
            b"node",
        ]));
    }
    assert!(err(&nar).contains("deeper than the limit of 4096"));
}

#[test]
fn writer_refuses_non_canonical_events() {
    let mut w = NarWriter::new(Vec::new());
    w.directory(b"").unwrap();
    w.symlink(b"b", b"x").unwrap();
    assert!(w
        .symlink(b"a", b"x")
        .unwrap_err()
        .to_string()
        .contains("strictly increasing"));
    assert!(w
        .symlink(b"c/d", b"x")
        .unwrap_err()
        .to_string()
        .contains("`/`"));
    let mut w = NarWriter::new(Vec::new());
    assert!(w.directory(b"x").is_err());
    let mut w = NarWriter::new(Vec::new());
    w.begin_file(b"", false, 3).unwrap();
    w.contents(b"ab").unwrap();
    assert!(w.end_file().is_err());
    assert!(w.contents(b"cd").is_err());
    let w = NarWriter::new(Vec::new());
    assert!(w.finish().is_err());
}

/// Contents written by the caller through `contents_with` make the same NAR as
/// `contents`, under the same checks.
#[test]
fn contents_written_by_the_caller_are_accounted_alike() {
    use std::io::Write as _;
    let mut a = NarWriter::new(Vec::new());
    a.begin_file(b"", true, 5).unwrap();
    a.contents(b"he").unwrap();
    a.contents(b"llo").unwrap();
    a.end_file().unwrap();
    let mut b = NarWriter::new(Vec::new());
    b.begin_file(b"", true, 5).unwrap();
    b.contents_with(2, |out| out.write_all(b"he")).unwrap();
    b.contents_with(3, |out| out.write_all(b"llo")).unwrap();
    b.end_file().unwrap();
    assert_eq!(b.written(), a.written());
    assert_eq!(b.finish().unwrap(), a.finish().unwrap());

    let mut w = NarWriter::new(Vec::new());
    w.begin_file(b"", false, 3).unwrap();
    let mut called = false;
    let e = w.contents_with(4, |_| {
        called = true;
        Ok(())
    });
    assert!(e.unwrap_err().to_string().contains("more file contents"));
    assert!(!called, "refused before the output is given out");
    let e = w.contents_with(1, |_| Err(std::io::Error::other("gone")));
    assert!(matches!(e, Err(NarError::Io { .. })), "{e:?}");
}

#[test]
fn unread_file_contents_are_skipped() {
    let tree = Node::Dir(vec![
        (b"a".to_vec(), Node::File(false, vec![7; 1000])),
        (b"b".to_vec(), Node::File(true, vec![9; 3])),
    ]);
    let nar = write_tree(&tree);
    let mut r = NarReader::new(&nar[..]);
    let mut seen = Vec::new();
    while let Some(ev) = r.next().unwrap() {
        if let Event::File { name, size, .. } = ev {
            seen.push((name.to_vec(), size));
        }
    }
    assert_eq!(seen, vec![(b"a".to_vec(), 1000), (b"b".to_vec(), 3)]);
}
