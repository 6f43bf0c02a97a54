//! The per-process in-memory index of cache entries: what is on disk, how
//! big, until when fresh, and when last used — enough to answer "is it
//! there?" without touching the disk and to choose what the manager evicts.
//!
//! Eviction (nginx's cache manager): every entry not accessed for `inactive`
//! goes, then the least recently accessed until the total size is under
//! `max_size` and the entry count under the zone's capacity.

#![deny(missing_docs)]

use std::collections::HashMap;

/// Index entries per byte of `keys_zone` (nginx: about 8000 keys per MiB).
pub const ZONE_BYTES_PER_KEY: u64 = 128;

/// How many keys a `keys_zone` of `zone_bytes` holds.
pub fn capacity_for_zone(zone_bytes: u64) -> usize {
    usize::try_from(zone_bytes / ZONE_BYTES_PER_KEY).unwrap_or(usize::MAX)
}

/// What the index knows about one entry file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// File size on disk (header + body), bytes.
    pub size_bytes: u64,
    /// End of freshness, Unix seconds.
    pub expires_at: i64,
    /// Last lookup that used it (or when it was stored/loaded), Unix seconds.
    pub last_access: i64,
    /// The primary key's MD5: the entry's own key unless it is a Vary variant
    /// stored under its variant key.
    pub primary: [u8; 16],
    /// Lookups since it was inserted (for `proxy_cache_min_uses`).
    pub uses: u32,
}

/// The index: MD5 (the file name) -> entry, with total size accounting.
#[derive(Debug, Default)]
pub struct Index {
    map: HashMap<[u8; 16], IndexEntry>,
    /// primary -> variants stored under their own key (the primary excluded).
    variants: HashMap<[u8; 16], Vec<[u8; 16]>>,
    total_bytes: u64,
    max_entries: Option<usize>,
}

impl Index {
    /// An empty, unbounded index.
    pub fn new() -> Index {
        Index::default()
    }

    /// An empty index holding at most `max_entries` (see [`capacity_for_zone`]).
    pub fn with_max_entries(max_entries: usize) -> Index {
        Index {
            max_entries: Some(max_entries),
            ..Index::default()
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// No entries?
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Sum of `size_bytes`.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// The entry for `md5`.
    pub fn get(&self, md5: &[u8; 16]) -> Option<&IndexEntry> {
        self.map.get(md5)
    }

    /// Adds or replaces the entry for `md5`; returns the old one.
    pub fn insert(&mut self, md5: [u8; 16], entry: IndexEntry) -> Option<IndexEntry> {
        let old = self.remove(&md5);
        self.total_bytes = self.total_bytes.saturating_add(entry.size_bytes);
        if entry.primary != md5 {
            self.variants.entry(entry.primary).or_default().push(md5);
        }
        self.map.insert(md5, entry);
        old
    }

    /// Adds the entry unless `md5` is already present (the loader must not
    /// overwrite what workers stored meanwhile). True if inserted.
    pub fn insert_if_absent(&mut self, md5: [u8; 16], entry: IndexEntry) -> bool {
        if self.map.contains_key(&md5) {
            return false;
        }
        self.insert(md5, entry);
        true
    }

    /// Removes the entry for `md5`.
    pub fn remove(&mut self, md5: &[u8; 16]) -> Option<IndexEntry> {
        let old = self.map.remove(md5)?;
        self.total_bytes = self.total_bytes.saturating_sub(old.size_bytes);
        if old.primary != *md5 {
            if let Some(v) = self.variants.get_mut(&old.primary) {
                v.retain(|k| k != md5);
                if v.is_empty() {
                    self.variants.remove(&old.primary);
                }
            }
        }
        Some(old)
    }

    /// Records a use at `now`; false if `md5` is not indexed.
    pub fn touch(&mut self, md5: &[u8; 16], now: i64) -> bool {
        match self.map.get_mut(md5) {
            Some(e) => {
                e.last_access = e.last_access.max(now);
                e.uses = e.uses.saturating_add(1);
                true
            }
            None => false,
        }
    }

    /// Every indexed file of a primary key: the primary itself (if present)
    /// and its Vary variants — what PURGE and invalidation remove.
    pub fn keys_for(&self, primary: &[u8; 16]) -> Vec<[u8; 16]> {
        let mut out = Vec::new();
        if self.map.contains_key(primary) {
            out.push(*primary);
        }
        if let Some(v) = self.variants.get(primary) {
            out.extend_from_slice(v);
        }
        out
    }

    /// What the manager should delete at `now`: every entry not accessed for
    /// `inactive_s` seconds (0 = no inactivity limit), then the least recently
    /// accessed ones until the rest fits in `max_size_bytes` and the entry
    /// limit. Oldest first; ties broken by key so the order is deterministic.
    /// Nothing is removed here: delete the files, then [`Index::remove`].
    pub fn evict_candidates(
        &self,
        max_size_bytes: Option<u64>,
        inactive_s: u64,
        now: i64,
    ) -> Vec<[u8; 16]> {
        let inactive = |e: &IndexEntry| {
            inactive_s > 0 && now.saturating_sub(e.last_access) >= inactive_s as i64
        };
        let mut out = Vec::new();
        let mut total = self.total_bytes;
        let mut count = self.map.len();
        let mut live: Vec<(&[u8; 16], &IndexEntry)> = Vec::with_capacity(self.map.len());
        for (k, e) in &self.map {
            if inactive(e) {
                out.push(*k);
                total = total.saturating_sub(e.size_bytes);
                count -= 1;
            } else {
                live.push((k, e));
            }
        }
        out.sort_by_key(|k| (self.map.get(k).map_or(0, |e| e.last_access), *k));
        let max_size = max_size_bytes.unwrap_or(u64::MAX);
        let max_entries = self.max_entries.unwrap_or(usize::MAX);
        if total > max_size || count > max_entries {
            live.sort_by_key(|(k, e)| (e.last_access, **k));
            for (k, e) in live {
                if total <= max_size && count <= max_entries {
                    break;
                }
                out.push(*k);
                total = total.saturating_sub(e.size_bytes);
                count -= 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(size: u64, last_access: i64) -> IndexEntry {
        IndexEntry {
            size_bytes: size,
            expires_at: 0,
            last_access,
            primary: [0; 16],
            uses: 0,
        }
    }

    fn k(n: u8) -> [u8; 16] {
        [n; 16]
    }

    /// Inserts entries whose primary is their own key.
    fn index(items: &[(u8, u64, i64)]) -> Index {
        let mut ix = Index::new();
        for &(n, size, at) in items {
            ix.insert(
                k(n),
                IndexEntry {
                    primary: k(n),
                    ..e(size, at)
                },
            );
        }
        ix
    }

    #[test]
    fn size_accounting_on_insert_replace_remove() {
        let mut ix = index(&[(1, 100, 0), (2, 50, 0)]);
        assert_eq!((ix.len(), ix.total_bytes()), (2, 150));
        let old = ix.insert(
            k(1),
            IndexEntry {
                primary: k(1),
                ..e(30, 5)
            },
        );
        assert_eq!(old.map(|o| o.size_bytes), Some(100));
        assert_eq!(ix.total_bytes(), 80);
        assert_eq!(ix.remove(&k(2)).map(|o| o.size_bytes), Some(50));
        assert_eq!(ix.remove(&k(2)), None);
        assert_eq!((ix.len(), ix.total_bytes()), (1, 30));
        assert!(!ix.is_empty());
    }

    #[test]
    fn touch_updates_access_and_uses() {
        let mut ix = index(&[(1, 10, 100)]);
        assert!(ix.touch(&k(1), 200));
        assert!(ix.touch(&k(1), 150)); // clocks never move last_access back
        let got = ix.get(&k(1)).copied().unwrap();
        assert_eq!((got.last_access, got.uses), (200, 2));
        assert!(!ix.touch(&k(9), 1));
    }

    #[test]
    fn inactive_entries_go_first_then_lru_until_under_max_size() {
        let ix = index(&[
            (1, 100, 1000),
            (2, 100, 500),
            (3, 100, 900),
            (4, 100, 100),
            (5, 100, 950),
        ]);
        // inactive=600 at now=1000: entries last used at <= 400 go (key 4).
        assert_eq!(ix.evict_candidates(None, 600, 1000), vec![k(4)]);
        // max_size 250: after key 4, the LRU order is 2 (500), 3 (900).
        assert_eq!(
            ix.evict_candidates(Some(250), 600, 1000),
            vec![k(4), k(2), k(3)]
        );
        assert_eq!(
            ix.evict_candidates(Some(500), 0, 1000),
            Vec::<[u8; 16]>::new()
        );
        assert_eq!(ix.evict_candidates(Some(0), 0, 1000).len(), 5);
    }

    #[test]
    fn touching_changes_the_eviction_order() {
        let mut ix = index(&[(1, 100, 10), (2, 100, 20), (3, 100, 30)]);
        assert_eq!(ix.evict_candidates(Some(200), 0, 40), vec![k(1)]);
        ix.touch(&k(1), 40);
        assert_eq!(ix.evict_candidates(Some(200), 0, 40), vec![k(2)]);
        // Equal access times: deterministic by key.
        let ix = index(&[(7, 1, 5), (3, 1, 5), (5, 1, 5)]);
        assert_eq!(ix.evict_candidates(Some(1), 0, 5), vec![k(3), k(5)]);
    }

    #[test]
    fn zone_capacity_limits_entry_count() {
        let mut ix = Index::with_max_entries(2);
        for (n, at) in [(1, 30), (2, 10), (3, 20)] {
            ix.insert(
                k(n),
                IndexEntry {
                    primary: k(n),
                    ..e(1, at)
                },
            );
        }
        assert_eq!(ix.evict_candidates(None, 0, 40), vec![k(2)]);
        assert_eq!(capacity_for_zone(1 << 20), 8192);
    }

    #[test]
    fn variants_are_found_by_primary_and_forgotten_on_remove() {
        let mut ix = index(&[(1, 10, 0)]);
        ix.insert(
            k(2),
            IndexEntry {
                primary: k(1),
                ..e(10, 0)
            },
        );
        ix.insert(
            k(3),
            IndexEntry {
                primary: k(1),
                ..e(10, 0)
            },
        );
        assert_eq!(ix.keys_for(&k(1)), vec![k(1), k(2), k(3)]);
        ix.remove(&k(1));
        assert_eq!(ix.keys_for(&k(1)), vec![k(2), k(3)]);
        ix.remove(&k(2));
        ix.insert(
            k(3),
            IndexEntry {
                primary: k(1),
                ..e(5, 0)
            },
        ); // replace: no duplicate
        assert_eq!(ix.keys_for(&k(1)), vec![k(3)]);
        ix.remove(&k(3));
        assert!(ix.keys_for(&k(1)).is_empty());
        assert!(ix.variants.is_empty());
    }

    #[test]
    fn loader_inserts_do_not_clobber_newer_entries() {
        let mut ix = index(&[(1, 10, 500)]);
        assert!(!ix.insert_if_absent(
            k(1),
            IndexEntry {
                primary: k(1),
                ..e(99, 1)
            }
        ));
        assert_eq!(ix.get(&k(1)).map(|e| e.size_bytes), Some(10));
        assert!(ix.insert_if_absent(
            k(2),
            IndexEntry {
                primary: k(2),
                ..e(99, 1)
            }
        ));
        assert_eq!(ix.total_bytes(), 109);
    }
}
