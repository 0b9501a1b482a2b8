//! The root records in the block table's LMDB environment: four named trees beside the
//! blocks, written in the same transactions as blocks, so that a session records a
//! root in the very commit that holds its DAG's last new block (or a later one), and a
//! `kill -9` leaves either the record with its whole DAG or neither.
//!
//! ```text
//! roots        CID bytes ++ sha256(name)?  -> the record (record_form, versioned)
//! root-names   sha256(name)                -> CID bytes (a name names one root)
//! root-paths   store-path hash (32 chars) ++ key in `roots` -> ""   (narinfo records)
//! root-meta    "version" / "narinfo-nix" / "narinfo-guix" -> u64 (little-endian)
//! ```
//!
//! A CID's bytes are self-delimiting, so the records of one root are the keys starting
//! with its bytes; names are hashed so that every key is short and bounded whatever
//! the name. Lookups are B-tree descents (O(log N)); writes go through LMDB's writer
//! (heed), reads through [`crate::lmdb_file`] like every read of the file.

use std::cell::OnceCell;
use std::str::FromStr;

use heed::types::Bytes;
use heed::{Database, Env, RwTxn};
use narfs_core::block::HashAlg;
use narfs_core::Cid;
use narfs_nix::{StoreDir, StorePath};

use crate::lmdb_file::{Tree, Value, View};
use crate::record_form::{self, MAX_RECORD};
use crate::roots::RootRecord;
use crate::Error;

const ROOTS: &str = "roots";
const NAMES: &str = "root-names";
const PATHS: &str = "root-paths";
const META: &str = "root-meta";

const VERSION: &[u8] = b"version";
const NARINFO_NIX: &[u8] = b"narinfo-nix";
const NARINFO_GUIX: &[u8] = b"narinfo-guix";

type Table = Database<Bytes, Bytes>;

/// LMDB's handles of the four trees, for the writer.
#[derive(Debug, Clone)]
pub(crate) struct Tables {
    /// The environment's directory, for errors.
    dir: std::path::PathBuf,
    roots: Table,
    names: Table,
    paths: Table,
    meta: Table,
}

/// How many records carry a narinfo of each store directory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NarInfoCounts {
    /// `/nix/store` items (and any store path that is not `/gnu/store`).
    pub nix: u64,
    /// `/gnu/store` items.
    pub guix: u64,
}

fn name_key(name: &str) -> [u8; 32] {
    HashAlg::Sha2_256.digest(name.as_bytes())
}

/// The key of `rec` in `roots`, and its root's bytes.
fn primary(rec: &RootRecord) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let cid = rec.cid()?.to_bytes();
    let mut key = cid.clone();
    if let Some(n) = &rec.name {
        key.extend_from_slice(&name_key(n));
    }
    Ok((key, cid))
}

/// What [`Reader::each_after`] calls on each (key, record): whether to go on.
pub(crate) type RecordFn<'a> = dyn FnMut(&[u8], RootRecord) -> Result<bool, Error> + 'a;

/// The key of `rec` in `roots`: the order [`Reader::each_after`] walks records in.
pub(crate) fn key_of(rec: &RootRecord) -> Result<Vec<u8>, Error> {
    Ok(primary(rec)?.0)
}

/// The store-path hash a record with a narinfo is asked for by, and whether it is Guix's.
fn path_of(rec: &RootRecord) -> Option<(String, bool)> {
    let meta = rec.narinfo.as_ref()?;
    let p = StorePath::parse(&meta.store_path).ok()?;
    Some((p.hash_part().to_string(), p.dir() == StoreDir::Guix))
}

fn bad_record(key: &[u8]) -> impl FnOnce(record_form::RecordError) -> Error + '_ {
    move |source| Error::StoredRecord {
        key: key.iter().map(|b| format!("{b:02x}")).collect(),
        source,
    }
}

impl Tables {
    fn e(&self) -> impl FnOnce(heed::Error) -> Error + '_ {
        move |e| Error::Lmdb {
            path: self.dir.clone(),
            source: Box::new(e),
        }
    }

    /// Opens the trees, creating them if needed, in `txn` (after the file was checked).
    pub(crate) fn create(env: &Env<heed::WithoutTls>, txn: &mut RwTxn<'_>) -> heed::Result<Tables> {
        Ok(Tables {
            dir: env.path().to_path_buf(),
            roots: env.create_database(txn, Some(ROOTS))?,
            names: env.create_database(txn, Some(NAMES))?,
            paths: env.create_database(txn, Some(PATHS))?,
            meta: env.create_database(txn, Some(META))?,
        })
    }

    /// Records `rec` in `txn`: replaces a record of the same root and name, and drops
    /// the record of another root that had its name. Sealed (`record_form` version 2)
    /// when `seal`: only a writer that computed or checked its NarHash against the
    /// NAR may seal (see [`RootRecord::sealed`]).
    pub(crate) fn add(
        &self,
        txn: &mut RwTxn<'_>,
        rec: &RootRecord,
        seal: bool,
    ) -> Result<(), Error> {
        let stored = match seal {
            true => record_form::encode(rec),
            false => record_form::encode_unsealed(rec),
        }
        .map_err(bad_record(b""))?;
        let (key, cid) = primary(rec)?;
        if let Some(name) = &rec.name {
            let nk = name_key(name);
            let old = self
                .names
                .get(txn, &nk)
                .map_err(self.e())?
                .map(<[u8]>::to_vec);
            if let Some(old_cid) = old.filter(|c| *c != cid) {
                let mut old_key = old_cid;
                old_key.extend_from_slice(&nk);
                self.delete(txn, &old_key)?;
            }
            self.names.put(txn, &nk, &cid).map_err(self.e())?;
        }
        if let Some(old) = self.roots.get(txn, &key).map_err(self.e())? {
            let old = record_form::decode(old).map_err(bad_record(&key))?;
            self.unindex(txn, &key, &old)?;
        }
        self.roots.put(txn, &key, &stored).map_err(self.e())?;
        if let Some((hash, guix)) = path_of(rec) {
            let mut pk = hash.into_bytes();
            pk.extend_from_slice(&key);
            self.paths.put(txn, &pk, b"").map_err(self.e())?;
            self.bump(txn, if guix { NARINFO_GUIX } else { NARINFO_NIX }, 1)?;
        }
        self.bump(txn, VERSION, 1)
    }

    /// Removes the record under `key` in `roots` and its index entries.
    fn delete(&self, txn: &mut RwTxn<'_>, key: &[u8]) -> Result<Option<RootRecord>, Error> {
        let Some(old) = self.roots.get(txn, key).map_err(self.e())? else {
            return Ok(None);
        };
        let old = record_form::decode(old).map_err(bad_record(key))?;
        self.unindex(txn, key, &old)?;
        self.roots.delete(txn, key).map_err(self.e())?;
        if let Some(name) = &old.name {
            let nk = name_key(name);
            let cid = old.cid()?.to_bytes();
            if self.names.get(txn, &nk).map_err(self.e())? == Some(&cid[..]) {
                self.names.delete(txn, &nk).map_err(self.e())?;
            }
        }
        self.bump(txn, VERSION, 1)?;
        Ok(Some(old))
    }

    fn unindex(&self, txn: &mut RwTxn<'_>, key: &[u8], old: &RootRecord) -> Result<(), Error> {
        if let Some((hash, guix)) = path_of(old) {
            let mut pk = hash.into_bytes();
            pk.extend_from_slice(key);
            if self.paths.delete(txn, &pk).map_err(self.e())? {
                self.bump(txn, if guix { NARINFO_GUIX } else { NARINFO_NIX }, -1)?;
            }
        }
        Ok(())
    }

    fn bump(&self, txn: &mut RwTxn<'_>, counter: &[u8], by: i64) -> Result<(), Error> {
        let now = self
            .meta
            .get(txn, counter)
            .map_err(self.e())?
            .map_or(0, u64_of);
        let next = now.saturating_add_signed(by);
        self.meta
            .put(txn, counter, &next.to_le_bytes())
            .map_err(self.e())?;
        Ok(())
    }

    /// Removes the records NAME or CID designates (as [`find`] finds them).
    pub(crate) fn remove(
        &self,
        txn: &mut RwTxn<'_>,
        name_or_cid: &str,
    ) -> Result<Vec<RootRecord>, Error> {
        let nk = name_key(name_or_cid);
        let mut keys = Vec::new();
        if let Some(cid) = self.names.get(txn, &nk).map_err(self.e())? {
            let mut k = cid.to_vec();
            k.extend_from_slice(&nk);
            keys.push(k);
        } else if let Ok(cid) = Cid::from_str(name_or_cid) {
            for e in self
                .roots
                .prefix_iter(txn, &cid.to_bytes())
                .map_err(self.e())?
            {
                keys.push(e.map_err(self.e())?.0.to_vec());
            }
        }
        let mut out = Vec::new();
        for k in keys {
            out.extend(self.delete(txn, &k)?);
        }
        Ok(out)
    }
}

fn u64_of(b: &[u8]) -> u64 {
    b.get(..8)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

/// The record tables of one snapshot, read through the checked file reader. Each
/// tree's record is looked up in the main tree when first needed (a narinfo lookup
/// needs two of the four).
pub(crate) struct Reader<'v> {
    view: View<'v>,
    trees: [OnceCell<Option<Tree>>; 4],
}

/// Indexes into [`Reader::trees`].
const T_ROOTS: usize = 0;
const T_NAMES: usize = 1;
const T_PATHS: usize = 2;
const T_META: usize = 3;
const TREE_NAMES: [&str; 4] = [ROOTS, NAMES, PATHS, META];

impl<'v> Reader<'v> {
    pub(crate) fn new(view: View<'v>) -> Result<Reader<'v>, Error> {
        Ok(Reader {
            view,
            trees: Default::default(),
        })
    }

    fn tree(&self, which: usize) -> Result<Option<Tree>, Error> {
        if let Some(t) = self.trees[which].get() {
            return Ok(*t);
        }
        let t = self.view.named(TREE_NAMES[which].as_bytes())?;
        Ok(*self.trees[which].get_or_init(|| t))
    }

    fn bytes(&self, v: &Value) -> Result<Vec<u8>, Error> {
        self.view.read_from(v, MAX_RECORD as u64, 0)
    }

    fn get(&self, tree: Option<Tree>, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let Some(t) = tree else { return Ok(None) };
        match self.view.get_in(t, false, key)? {
            Some(v) => self.bytes(&v).map(Some),
            None => Ok(None),
        }
    }

    fn record(&self, key: &[u8]) -> Result<Option<RootRecord>, Error> {
        match self.get(self.tree(T_ROOTS)?, key)? {
            Some(b) => record_form::decode(&b).map(Some).map_err(bad_record(key)),
            None => Ok(None),
        }
    }

    /// Keys of `tree` starting with `prefix`, in order.
    fn keys_with(&self, tree: Option<Tree>, prefix: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
        let mut out = Vec::new();
        if let Some(t) = tree {
            self.view.scan(t, prefix, &mut |k, _| {
                let more = k.starts_with(prefix);
                if more {
                    out.push(k.to_vec());
                }
                Ok(more)
            })?;
        }
        Ok(out)
    }

    /// The record named `name`, if any.
    pub(crate) fn by_name(&self, name: &str) -> Result<Option<RootRecord>, Error> {
        let nk = name_key(name);
        let Some(mut key) = self.get(self.tree(T_NAMES)?, &nk)? else {
            return Ok(None);
        };
        key.extend_from_slice(&nk);
        // A hash names the record: it must carry that very name.
        Ok(self
            .record(&key)?
            .filter(|r| r.name.as_deref() == Some(name)))
    }

    /// The records of root `cid`.
    pub(crate) fn by_cid(&self, cid: &Cid) -> Result<Vec<RootRecord>, Error> {
        let mut out = Vec::new();
        for k in self.keys_with(self.tree(T_ROOTS)?, &cid.to_bytes())? {
            out.extend(self.record(&k)?);
        }
        Ok(out)
    }

    /// The records with a narinfo whose store path has this hash part.
    pub(crate) fn by_path_hash(&self, hash: &str) -> Result<Vec<RootRecord>, Error> {
        if hash.len() != narfs_nix::store_path::HASH_PART_LEN {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for k in self.keys_with(self.tree(T_PATHS)?, hash.as_bytes())? {
            let rec = self.record(&k[hash.len()..])?;
            out.extend(rec.filter(|r| path_of(r).is_some_and(|(h, _)| h == hash)));
        }
        Ok(out)
    }

    /// NAME's record, or else the records of the CID it spells.
    pub(crate) fn find(&self, name_or_cid: &str) -> Result<Vec<RootRecord>, Error> {
        if let Some(r) = self.by_name(name_or_cid)? {
            return Ok(vec![r]);
        }
        match Cid::from_str(name_or_cid) {
            Ok(cid) => self.by_cid(&cid),
            Err(_) => Ok(Vec::new()),
        }
    }

    /// Every record, in key order, to `f`.
    pub(crate) fn each(&self, f: &mut dyn FnMut(RootRecord)) -> Result<(), Error> {
        let Some(t) = self.tree(T_ROOTS)? else {
            return Ok(());
        };
        self.view.scan(t, b"", &mut |k, v| {
            let b = self.bytes(&v)?;
            f(record_form::decode(&b).map_err(bad_record(k))?);
            Ok(true)
        })
    }

    /// Every record whose key is after `after` (all of them for `b""`), in key order,
    /// with its key, to `f`, until it returns false.
    pub(crate) fn each_after(&self, after: &[u8], f: &mut RecordFn<'_>) -> Result<(), Error> {
        let Some(t) = self.tree(T_ROOTS)? else {
            return Ok(());
        };
        self.view.scan(t, after, &mut |k, v| {
            if !after.is_empty() && k == after {
                return Ok(true);
            }
            let b = self.bytes(&v)?;
            f(k, record_form::decode(&b).map_err(bad_record(k))?)
        })
    }

    fn counter(&self, name: &[u8]) -> Result<u64, Error> {
        Ok(self
            .get(self.tree(T_META)?, name)?
            .as_deref()
            .map_or(0, u64_of))
    }

    /// Moves with every change of a record.
    pub(crate) fn version(&self) -> Result<u64, Error> {
        self.counter(VERSION)
    }

    pub(crate) fn narinfo_counts(&self) -> Result<NarInfoCounts, Error> {
        Ok(NarInfoCounts {
            nix: self.counter(NARINFO_NIX)?,
            guix: self.counter(NARINFO_GUIX)?,
        })
    }
}
