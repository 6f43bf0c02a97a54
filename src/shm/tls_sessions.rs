//! `ssl_session_cache shared:NAME:SIZE`: TLS sessions every worker can
//! resume, in shared memory mapped by the master before it forks. A slot is
//! 1 KiB of `AtomicU64` words under a sequence lock (odd while written): the
//! sequence, the key's hash, the expiry, the two lengths, then key and value
//! bytes. Slots are direct-mapped by the key's hash, so a newer session
//! evicts an older one in its slot; a value too large for a slot is not
//! stored (the client does a full handshake next time).

use super::ShmRegion;
use std::io;
use std::sync::atomic::{fence, AtomicU64, Ordering};

/// Bytes per slot.
pub const SLOT_BYTES: usize = 1024;
const WORDS: usize = SLOT_BYTES / 8;
const HEADER_WORDS: usize = 4;
/// Key and value bytes one slot holds.
pub const SLOT_DATA: usize = (WORDS - HEADER_WORDS) * 8;

/// The shared session table.
pub struct SessionTable {
    region: ShmRegion,
    slots: usize,
}

impl std::fmt::Debug for SessionTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTable")
            .field("slots", &self.slots)
            .finish()
    }
}

impl SessionTable {
    /// A table of about `bytes` (at least one slot).
    pub fn new(bytes: u64) -> io::Result<SessionTable> {
        let slots = usize::try_from(bytes / SLOT_BYTES as u64)
            .unwrap_or(usize::MAX / SLOT_BYTES)
            .max(1);
        Ok(SessionTable {
            region: ShmRegion::anonymous(slots * SLOT_BYTES)?,
            slots,
        })
    }

    /// Slots in the table.
    pub fn slots(&self) -> usize {
        self.slots
    }

    fn slot(&self, hash: u64) -> &[AtomicU64] {
        let i = (hash % self.slots as u64) as usize;
        self.region.slice::<AtomicU64>(i * SLOT_BYTES, WORDS)
    }

    /// Store `value` under `key` until `expires` (unix seconds). False when
    /// it does not fit or the slot is being written by another worker.
    pub fn put(&self, key: &[u8], value: &[u8], expires: u64) -> bool {
        if key.len() + value.len() > SLOT_DATA || key.is_empty() {
            return false;
        }
        let hash = hash(key);
        let s = self.slot(hash);
        let seq = s[0].load(Ordering::Acquire);
        if seq & 1 == 1
            || s[0]
                .compare_exchange(seq, seq + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        s[1].store(hash, Ordering::Relaxed);
        s[2].store(expires, Ordering::Relaxed);
        s[3].store(
            (key.len() as u64) << 32 | value.len() as u64,
            Ordering::Relaxed,
        );
        let mut bytes = key.iter().chain(value.iter());
        for w in &s[HEADER_WORDS..] {
            let mut word = [0u8; 8];
            let mut any = false;
            for b in word.iter_mut() {
                if let Some(&x) = bytes.next() {
                    *b = x;
                    any = true;
                }
            }
            if !any {
                break;
            }
            w.store(u64::from_le_bytes(word), Ordering::Relaxed);
        }
        s[0].store(seq + 2, Ordering::Release);
        true
    }

    /// The value under `key` if present and not expired at `now`; with
    /// `take`, the slot is emptied too (single-use sessions).
    pub fn get(&self, key: &[u8], now: u64, take: bool) -> Option<Vec<u8>> {
        let hash = hash(key);
        let s = self.slot(hash);
        let seq = s[0].load(Ordering::Acquire);
        if seq & 1 == 1 || seq == 0 || s[1].load(Ordering::Relaxed) != hash {
            return None;
        }
        let expires = s[2].load(Ordering::Relaxed);
        let lens = s[3].load(Ordering::Relaxed);
        let (klen, vlen) = ((lens >> 32) as usize, (lens & 0xffff_ffff) as usize);
        if klen != key.len() || klen + vlen > SLOT_DATA || expires <= now {
            return None;
        }
        let mut data = Vec::with_capacity(klen + vlen);
        for w in &s[HEADER_WORDS..HEADER_WORDS + (klen + vlen).div_ceil(8)] {
            data.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
        }
        data.truncate(klen + vlen);
        fence(Ordering::Acquire);
        if s[0].load(Ordering::Relaxed) != seq || data[..klen] != *key {
            return None;
        }
        if take
            && s[0]
                .compare_exchange(seq, seq + 2, Ordering::AcqRel, Ordering::Relaxed)
                .map(|_| s[2].store(0, Ordering::Release))
                .is_err()
        {
            // Someone else took or replaced it first.
            return None;
        }
        Some(data.split_off(klen))
    }
}

fn hash(key: &[u8]) -> u64 {
    // Never 0: a zeroed slot holds no key.
    crate::util::hash::fnv1a64(key) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_sessions_come_back_until_they_expire_or_are_taken() {
        let t = SessionTable::new(64 * 1024).unwrap();
        assert_eq!(t.slots(), 64);
        assert!(t.put(b"id-1", b"state one", 100));
        assert_eq!(
            t.get(b"id-1", 50, false).as_deref(),
            Some(&b"state one"[..])
        );
        assert_eq!(t.get(b"id-1", 100, false), None, "expired");
        assert_eq!(t.get(b"id-2", 50, false), None);
        assert!(t.put(b"id-3", b"once", 100));
        assert_eq!(t.get(b"id-3", 50, true).as_deref(), Some(&b"once"[..]));
        assert_eq!(t.get(b"id-3", 50, true), None, "taken");
        let big = vec![7u8; SLOT_DATA];
        assert!(!t.put(b"k", &big, 100), "too large for a slot");
        let fits = vec![9u8; SLOT_DATA - 1];
        assert!(t.put(b"k", &fits, 100));
        assert_eq!(t.get(b"k", 1, false).unwrap(), fits);
    }
}
