//! File-backed shared-memory zones: `STATE_DIR/NAME.zone`, mapped MAP_SHARED
//! by the master before it forks, so every worker of every generation shares
//! the pages, and because the pages are a file's they survive `kill -9` of
//! every sluice process and a clean restart.
//!
//! A zone is one 4 KiB header page followed by the body (the caller's table
//! of atomics). The header is versioned and checksummed:
//!
//! | word | field | |
//! |---|---|---|
//! | 0 | `magic` | `"SLUICEZN"` |
//! | 1 | `version` | layout version of this file format ([`LAYOUT_VERSION`]) |
//! | 2 | `zone_bytes` | whole file size, header included |
//! | 3 | `kind` | what the body holds (chosen by the caller) |
//! | 4 | `slot_words` | body slot size in 64-bit words |
//! | 5 | `layout` | digest of the parameters that shape a slot |
//! | 6 | `fingerprint` | digest of every zone parameter (config fingerprint) |
//! | 7-8 | `seed` | random key-hash seed, made once per zone |
//! | 9 | `created_unix` | creation time, seconds |
//! | 10 | `checksum` | digest of words 0-9 |
//! | 16-31 | `metrics` | monotonic counters (meaning chosen by the caller) |
//!
//! Opening never trusts a file: a short file, a wrong magic, version or
//! checksum, or a size that disagrees with the header is *set aside* (renamed
//! `NAME.zone.corrupt-UNIXTIME`) and a fresh zone created. A valid zone of a
//! different size or layout is reported as [`Opened::Changed`] with a new
//! zone *staged* at `NAME.zone.tmp`; the caller migrates or rebuilds, then
//! [`ZoneMap::commit`]s it (rename over the old file). New files are always
//! written under the temporary name and renamed, so a crash never leaves a
//! half-made zone under the real name.

use super::{AtomicsOnly, ShmRegion};
use crate::util::hash::hash_words;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// `"SLUICEZN"` as a little-endian word.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SLUICEZN");
/// Version of the file layout described in this module.
pub const LAYOUT_VERSION: u64 = 1;
/// Size of the header page; the body starts here.
pub const HEADER_BYTES: usize = 4096;
/// Number of metric words in the header.
pub const METRIC_WORDS: usize = 16;

/// The header page's used part (see the module table).
#[repr(C)]
pub struct ZoneHeader {
    /// `"SLUICEZN"`.
    pub magic: AtomicU64,
    /// [`LAYOUT_VERSION`].
    pub version: AtomicU64,
    /// Whole file size in bytes.
    pub zone_bytes: AtomicU64,
    /// Body kind (caller-defined, non-zero).
    pub kind: AtomicU64,
    /// Slot size in words.
    pub slot_words: AtomicU64,
    /// Digest of the slot-shaping parameters.
    pub layout: AtomicU64,
    /// Digest of all parameters.
    pub fingerprint: AtomicU64,
    /// Key-hash seed.
    pub seed: [AtomicU64; 2],
    /// Creation time, unix seconds.
    pub created_unix: AtomicU64,
    /// Digest of the words above.
    pub checksum: AtomicU64,
    _reserved: [AtomicU64; 5],
    /// Monotonic counters (caller-defined).
    pub metrics: [AtomicU64; METRIC_WORDS],
}

// SAFETY: only AtomicU64 fields (and arrays of them).
unsafe impl AtomicsOnly for ZoneHeader {}

impl ZoneHeader {
    fn digest(&self) -> u64 {
        hash_words(&[
            self.magic.load(Relaxed),
            self.version.load(Relaxed),
            self.zone_bytes.load(Relaxed),
            self.kind.load(Relaxed),
            self.slot_words.load(Relaxed),
            self.layout.load(Relaxed),
            self.fingerprint.load(Relaxed),
            self.seed[0].load(Relaxed),
            self.seed[1].load(Relaxed),
            self.created_unix.load(Relaxed),
        ])
    }

    /// The key-hash seed.
    pub fn seed(&self) -> (u64, u64) {
        (self.seed[0].load(Relaxed), self.seed[1].load(Relaxed))
    }
}

/// What a zone should look like.
#[derive(Debug, Clone, Copy)]
pub struct ZoneSpec<'a> {
    /// The state directory.
    pub dir: &'a Path,
    /// Zone name (a file-name-safe word; checked by the config).
    pub name: &'a str,
    /// Whole file size; a multiple of the page size, > [`HEADER_BYTES`].
    pub zone_bytes: u64,
    /// Body kind, non-zero.
    pub kind: u64,
    /// Slot size in words, non-zero.
    pub slot_words: u64,
    /// Digest of the slot-shaping parameters.
    pub layout: u64,
    /// Digest of every parameter.
    pub fingerprint: u64,
    /// The key-hash seed of a new file; `None` = random. (Cluster zones
    /// need the same key hashes on every node.)
    pub seed: Option<(u64, u64)>,
}

/// A mapped zone file.
pub struct ZoneMap {
    region: ShmRegion,
    path: PathBuf,
    staged: Option<PathBuf>,
}

/// The result of [`open`].
pub enum Opened {
    /// No file existed: a fresh zone was created.
    Created(ZoneMap),
    /// A valid zone of the same kind, size and layout (its fingerprint may
    /// differ: see [`ZoneMap::set_fingerprint`]).
    Existing(ZoneMap),
    /// A valid zone of another size, kind or layout: `old` is the file as it
    /// is, `new` a fresh zone staged under a temporary name.
    Changed {
        /// The existing zone.
        old: ZoneMap,
        /// The replacement, to fill and then [`ZoneMap::commit`].
        new: ZoneMap,
    },
    /// The file was corrupt or of another version: renamed to `moved_to`,
    /// and a fresh zone created.
    SetAside {
        /// The fresh zone.
        new: ZoneMap,
        /// Where the bad file went.
        moved_to: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
}

/// `DIR/NAME.zone`.
pub fn zone_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.zone"))
}

fn staged_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.zone.tmp"))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Open `spec`'s zone file, validating, setting aside or creating it.
pub fn open(spec: &ZoneSpec) -> io::Result<Opened> {
    fs::create_dir_all(spec.dir)?;
    let path = zone_path(spec.dir, spec.name);
    let file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut z = create_staged(spec, spec.seed)?;
            z.commit()?;
            return Ok(Opened::Created(z));
        }
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let old = match validate(&file, len) {
        Ok(region) => ZoneMap {
            region,
            path: path.clone(),
            staged: None,
        },
        Err(reason) => {
            drop(file);
            let moved_to = spec
                .dir
                .join(format!("{}.zone.corrupt-{}", spec.name, unix_now()));
            fs::rename(&path, &moved_to)?;
            let mut new = create_staged(spec, spec.seed)?;
            new.commit()?;
            return Ok(Opened::SetAside {
                new,
                moved_to,
                reason,
            });
        }
    };
    let h = old.header();
    let same = h.zone_bytes.load(Relaxed) == spec.zone_bytes
        && h.kind.load(Relaxed) == spec.kind
        && h.slot_words.load(Relaxed) == spec.slot_words
        && h.layout.load(Relaxed) == spec.layout;
    if same {
        return Ok(Opened::Existing(old));
    }
    let new = create_staged(spec, spec.seed.or(Some(h.seed())))?;
    Ok(Opened::Changed { old, new })
}

/// Map an existing file and check its header; `Err(reason)` if it cannot
/// be trusted.
fn validate(file: &File, len: u64) -> Result<ShmRegion, String> {
    if len < HEADER_BYTES as u64 {
        return Err(format!("{len} bytes, shorter than a zone header"));
    }
    let len_usize = usize::try_from(len).map_err(|_| "too large to map".to_string())?;
    let region = ShmRegion::map_file(file, len_usize).map_err(|e| format!("mmap failed: {e}"))?;
    let h = &region.slice::<ZoneHeader>(0, 1)[0];
    let magic = h.magic.load(Relaxed);
    if magic != MAGIC {
        return Err("not a sluice zone (bad magic)".into());
    }
    let version = h.version.load(Relaxed);
    if version != LAYOUT_VERSION {
        return Err(format!(
            "layout version {version}, this sluice reads version {LAYOUT_VERSION}"
        ));
    }
    if h.checksum.load(Relaxed) != h.digest() {
        return Err("header checksum mismatch".into());
    }
    let declared = h.zone_bytes.load(Relaxed);
    if declared != len {
        return Err(format!("header says {declared} bytes, the file has {len}"));
    }
    if h.kind.load(Relaxed) == 0 || h.slot_words.load(Relaxed) == 0 {
        return Err("header names no kind or slot size".into());
    }
    Ok(region)
}

/// Create `NAME.zone.tmp` sized and headed for `spec` (seeded with `seed`,
/// or a fresh random seed).
pub fn create_staged(spec: &ZoneSpec, seed: Option<(u64, u64)>) -> io::Result<ZoneMap> {
    if spec.zone_bytes <= HEADER_BYTES as u64 || spec.kind == 0 || spec.slot_words == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "zone too small or without a kind",
        ));
    }
    let len = usize::try_from(spec.zone_bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "zone too large"))?;
    let tmp = staged_path(spec.dir, spec.name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.set_len(spec.zone_bytes)?;
    let region = ShmRegion::map_file(&file, len)?;
    let seed = match seed {
        Some(s) => s,
        None => {
            let mut b = [0u8; 16];
            crate::sys::fill_random(&mut b)?;
            let mut lo = [0u8; 8];
            let mut hi = [0u8; 8];
            lo.copy_from_slice(&b[..8]);
            hi.copy_from_slice(&b[8..]);
            (u64::from_le_bytes(lo), u64::from_le_bytes(hi))
        }
    };
    let z = ZoneMap {
        region,
        path: zone_path(spec.dir, spec.name),
        staged: Some(tmp),
    };
    let h = z.header();
    h.version.store(LAYOUT_VERSION, Relaxed);
    h.zone_bytes.store(spec.zone_bytes, Relaxed);
    h.kind.store(spec.kind, Relaxed);
    h.slot_words.store(spec.slot_words, Relaxed);
    h.layout.store(spec.layout, Relaxed);
    h.fingerprint.store(spec.fingerprint, Relaxed);
    h.seed[0].store(seed.0, Relaxed);
    h.seed[1].store(seed.1, Relaxed);
    h.created_unix.store(unix_now(), Relaxed);
    h.magic.store(MAGIC, Relaxed);
    h.checksum.store(h.digest(), Relaxed);
    Ok(z)
}

impl ZoneMap {
    /// The header.
    pub fn header(&self) -> &ZoneHeader {
        &self.region.slice::<ZoneHeader>(0, 1)[0]
    }

    /// The body as words (everything after the header page).
    pub fn body(&self) -> &[AtomicU64] {
        let words = (self.region.len() - HEADER_BYTES) / 8;
        self.region.slice::<AtomicU64>(HEADER_BYTES, words)
    }

    /// Where the zone lives (its final name, even while staged).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whole size in bytes.
    pub fn len(&self) -> usize {
        self.region.len()
    }

    /// Never empty; for clippy.
    pub fn is_empty(&self) -> bool {
        self.region.is_empty()
    }

    /// Record new parameters (same layout) in the header.
    pub fn set_fingerprint(&self, fingerprint: u64) {
        let h = self.header();
        h.fingerprint.store(fingerprint, Relaxed);
        h.checksum.store(h.digest(), Relaxed);
    }

    /// Move a staged zone to its real name (no-op when not staged).
    pub fn commit(&mut self) -> io::Result<()> {
        if let Some(tmp) = self.staged.take() {
            fs::rename(&tmp, &self.path)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);
    impl Dir {
        fn new(tag: &str) -> Dir {
            let p = std::env::temp_dir().join(format!("sluice-zone-{}-{tag}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn spec<'a>(dir: &'a Path, bytes: u64, layout: u64) -> ZoneSpec<'a> {
        ZoneSpec {
            dir,
            name: "z",
            zone_bytes: bytes,
            kind: 1,
            slot_words: 4,
            layout,
            fingerprint: 7,
            seed: None,
        }
    }

    #[test]
    fn created_then_reopened_with_its_contents() {
        let d = Dir::new("reopen");
        let s = spec(&d.0, 16384, 1);
        let Opened::Created(z) = open(&s).unwrap() else {
            panic!("expected a new zone")
        };
        z.body()[3].store(42, Relaxed);
        z.header().metrics[0].fetch_add(5, Relaxed);
        let seed = z.header().seed();
        drop(z);
        let Opened::Existing(z) = open(&s).unwrap() else {
            panic!("expected the existing zone")
        };
        assert_eq!(z.body()[3].load(Relaxed), 42);
        assert_eq!(z.header().metrics[0].load(Relaxed), 5);
        assert_eq!(z.header().seed(), seed);
        assert!(!staged_path(&d.0, "z").exists());
    }

    #[test]
    fn corrupt_file_is_set_aside_never_trusted() {
        let d = Dir::new("corrupt");
        let s = spec(&d.0, 16384, 1);
        drop(open(&s).unwrap());
        let path = zone_path(&d.0, "z");
        // Flip a header byte: the checksum no longer matches.
        let mut bytes = fs::read(&path).unwrap();
        bytes[5 * 8] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        match open(&s).unwrap() {
            Opened::SetAside {
                new,
                moved_to,
                reason,
            } => {
                assert!(reason.contains("checksum"), "{reason}");
                assert!(moved_to.to_string_lossy().contains("z.zone.corrupt-"));
                assert!(moved_to.exists());
                assert_eq!(new.body()[0].load(Relaxed), 0);
            }
            _ => panic!("expected the file to be set aside"),
        }
        // Garbage and a truncated file are refused the same way.
        fs::write(&path, b"garbage").unwrap();
        assert!(matches!(open(&s).unwrap(), Opened::SetAside { .. }));
        let mut wrong_version = fs::read(&path).unwrap();
        wrong_version[8] = 9;
        fs::write(&path, &wrong_version).unwrap();
        match open(&s).unwrap() {
            Opened::SetAside { reason, .. } => assert!(reason.contains("version 9"), "{reason}"),
            _ => panic!("expected a version mismatch"),
        }
    }

    #[test]
    fn changed_size_or_layout_is_staged_with_the_same_seed() {
        let d = Dir::new("changed");
        let s = spec(&d.0, 16384, 1);
        let Opened::Created(z) = open(&s).unwrap() else {
            panic!()
        };
        let seed = z.header().seed();
        drop(z);
        let bigger = spec(&d.0, 32768, 1);
        let Opened::Changed { old, mut new } = open(&bigger).unwrap() else {
            panic!("expected a change")
        };
        assert_eq!(old.len(), 16384);
        assert_eq!(new.len(), 32768);
        assert_eq!(new.header().seed(), seed);
        assert!(staged_path(&d.0, "z").exists());
        new.commit().unwrap();
        drop((old, new));
        assert!(matches!(open(&bigger).unwrap(), Opened::Existing(_)));
        let relayout = spec(&d.0, 32768, 2);
        assert!(matches!(open(&relayout).unwrap(), Opened::Changed { .. }));
    }

    #[test]
    fn fingerprint_update_keeps_the_header_valid() {
        let d = Dir::new("fp");
        let s = spec(&d.0, 16384, 1);
        let Opened::Created(z) = open(&s).unwrap() else {
            panic!()
        };
        z.set_fingerprint(99);
        drop(z);
        let Opened::Existing(z) = open(&s).unwrap() else {
            panic!()
        };
        assert_eq!(z.header().fingerprint.load(Relaxed), 99);
    }
}
