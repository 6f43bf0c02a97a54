//! Tests of `loader.rs` on a messy cache directory.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::cache::entry::{encode_header, EntryMeta, ENTRY_VERSION};
use crate::cache::key::{cache_key_md5, entry_path, hex_string};
use crate::cache::testutil::TempDir;

const NOW: i64 = 1_700_000_000;
const LEVELS: &[u8] = &[1, 2];

/// Writes an entry file for `key` with `body` at `path`; returns its bytes.
fn write_entry(path: &Path, meta: &EntryMeta, body: &[u8]) -> Vec<u8> {
    let mut m = meta.clone();
    m.body_len = body.len() as u64;
    let mut bytes = encode_header(&m).unwrap();
    bytes.extend_from_slice(body);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, &bytes).unwrap();
    bytes
}

/// Writes `bytes` at `path`, creating directories.
fn put(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

fn meta(key: &str) -> EntryMeta {
    EntryMeta {
        key: key.as_bytes().to_vec(),
        expires_at: NOW + 60,
        ..EntryMeta::default()
    }
}

fn set_mtime(path: &Path, unix: i64) {
    let f = File::options().write(true).open(path).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_secs(unix as u64))
        .unwrap();
}

fn scan_all(dir: &Path) -> (HashMap<[u8; 16], IndexEntry>, ScanStats) {
    let mut found = HashMap::new();
    let stats = scan(dir, LEVELS, NOW, |md5, e| {
        assert!(found.insert(md5, e).is_none());
    });
    (found, stats)
}

#[test]
fn messy_directory_keeps_good_entries_and_removes_debris() {
    let t = TempDir::new("loader-messy");
    let d = &t.0;
    let at = |key: &str| entry_path(d, LEVELS, &cache_key_md5(key.as_bytes()));

    // Good entries.
    let good_a = write_entry(&at("a"), &meta("a"), b"body-a");
    write_entry(&at("b"), &meta("b"), b"");
    // A Vary variant stored under its variant key.
    let variant = [0x5a; 16];
    let vpath = entry_path(d, LEVELS, &variant);
    write_entry(
        &vpath,
        &EntryMeta {
            variant: Some(variant),
            ..meta("a")
        },
        b"v",
    );

    // Torn: one body byte missing.
    let torn = at("torn");
    let bytes = write_entry(&torn, &meta("torn"), b"12345");
    fs::write(&torn, &bytes[..bytes.len() - 1]).unwrap();
    // Wrong version (checksum recomputed so only the version is wrong).
    let old = at("old");
    let mut bytes = write_entry(&old, &meta("old"), b"x");
    bytes[4..6].copy_from_slice(&(ENTRY_VERSION + 1).to_le_bytes());
    fs::write(&old, &bytes).unwrap();
    // Garbage and empty files with entry names.
    put(&at("garbage"), b"\x00\xffnot a cache file at all");
    put(&at("empty"), b"");
    // A valid entry whose name is not its key's MD5.
    let liar = entry_path(d, LEVELS, &[0x11; 16]);
    write_entry(&liar, &meta("someone-else"), b"x");
    // A valid entry in the wrong level directory.
    let md5_c = cache_key_md5(b"c");
    let misplaced: PathBuf = d.join("0").join("00").join(hex_string(&md5_c));
    write_entry(&misplaced, &meta("c"), b"x");

    // Temp files: old ones go, recent ones (a write in progress) stay.
    fs::create_dir_all(d.join("tmp")).unwrap();
    fs::write(d.join("tmp/old"), b"partial").unwrap();
    set_mtime(&d.join("tmp/old"), NOW - 2 * 3600);
    fs::write(d.join("tmp/new"), b"partial").unwrap();
    set_mtime(&d.join("tmp/new"), NOW - 10);
    let sib_old = at("a").with_file_name(format!("{}.t1.2.3", hex_string(&cache_key_md5(b"a"))));
    fs::write(&sib_old, b"partial").unwrap();
    set_mtime(&sib_old, NOW - 7200);
    let sib_new = at("a").with_file_name(format!("{}.t9", hex_string(&cache_key_md5(b"a"))));
    fs::write(&sib_new, b"partial").unwrap();
    set_mtime(&sib_new, NOW);

    // Unrecognised things are left alone.
    fs::write(d.join("README"), b"hi").unwrap();
    fs::create_dir_all(d.join("zz/qq")).unwrap();
    fs::create_dir_all(at("b").with_file_name("ffffffffffffffffffffffffffffffff")).unwrap();
    fs::write(at("b").with_file_name("notes.txt"), b"").unwrap();

    let (found, stats) = scan_all(d);
    let mut keys: Vec<[u8; 16]> = found.keys().copied().collect();
    keys.sort();
    let mut want = vec![cache_key_md5(b"a"), cache_key_md5(b"b"), variant];
    want.sort();
    assert_eq!(keys, want);
    let a = found[&cache_key_md5(b"a")];
    assert_eq!(
        (a.size_bytes, a.expires_at, a.last_access),
        (good_a.len() as u64, NOW + 60, NOW)
    );
    assert_eq!(found[&variant].primary, cache_key_md5(b"a"));
    assert_eq!(stats.entries, 3);
    assert_eq!(stats.bad_removed, 6, "{stats:?}");
    assert_eq!(stats.temp_removed, 2, "{stats:?}");
    assert_eq!(stats.skipped, 4, "{stats:?}");
    assert_eq!(stats.errors, 0);
    for gone in [
        &torn,
        &old,
        &at("garbage"),
        &at("empty"),
        &liar,
        &misplaced,
        &d.join("tmp/old"),
        &sib_old,
    ] {
        assert!(!gone.exists(), "{}", gone.display());
    }
    for kept in [
        &at("a"),
        &vpath,
        &d.join("tmp/new"),
        &sib_new,
        &d.join("README"),
    ] {
        assert!(kept.exists(), "{}", kept.display());
    }
    // A second scan finds the same entries and nothing more to remove.
    let (again, stats) = scan_all(d);
    assert_eq!(again.len(), 3);
    assert_eq!((stats.bad_removed, stats.temp_removed), (0, 0));
}

#[test]
fn missing_directory_and_flat_layout() {
    let t = TempDir::new("loader-flat");
    let stats = scan(&t.0.join("nope"), LEVELS, NOW, |_, _| panic!("no entries"));
    assert_eq!(stats.errors, 1);
    let p = entry_path(&t.0, &[], &cache_key_md5(b"flat"));
    write_entry(&p, &meta("flat"), b"x");
    let mut n = 0;
    let stats = scan(&t.0, &[], NOW, |_, _| n += 1);
    assert_eq!(
        (n, stats.entries, stats.bytes),
        (1, 1, fs::metadata(&p).unwrap().len())
    );
}

#[test]
fn random_garbage_files_never_panic() {
    let t = TempDir::new("loader-fuzz");
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let valid = {
        let mut m = meta("k");
        m.body_len = 3;
        let mut b = encode_header(&m).unwrap();
        b.extend_from_slice(b"abc");
        b
    };
    for i in 0..200u64 {
        let md5: [u8; 16] = std::array::from_fn(|j| (next() >> (j % 8)) as u8);
        let path = entry_path(&t.0, LEVELS, &md5);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut bytes = if i % 2 == 0 {
            valid.clone()
        } else {
            (0..next() % 300).map(|_| next() as u8).collect()
        };
        if !bytes.is_empty() {
            let at = (next() as usize) % bytes.len();
            bytes[at] ^= (next() as u8) | 1;
            bytes.truncate((next() as usize) % (bytes.len() + 1));
        }
        fs::write(&path, &bytes).unwrap();
    }
    let stats = scan(&t.0, LEVELS, NOW, |_, _| {});
    assert_eq!(stats.entries, 0); // names never match keys
    assert_eq!(stats.bad_removed, 200);
}
