//! SipHash-2-4 with a 128-bit output: a keyed hash that is stable across
//! processes, restarts and Rust releases (unlike `DefaultHasher`), so values
//! stored in files (limit-zone key hashes, zone header checksums) stay
//! meaningful. Keyed with a per-zone random seed it also resists hash
//! flooding: a client cannot pick keys that pile up in one probe window.

/// FNV-1a, 64 bits: the cache entry checksum, the waiting room's path hash
/// in tokens and its cookie cache slots (one copy for all).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// CRC-32 (IEEE 802.3, reflected, as zlib and nginx's `ngx_crc32_*`),
/// computed in steps: `Crc32::new().update(a).update(b).finish()`.
#[derive(Debug, Clone, Copy)]
pub struct Crc32(u32);

const fn crc32_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC32_TABLE: [u32; 256] = crc32_table();

impl Default for Crc32 {
    fn default() -> Self {
        Crc32::new()
    }
}

impl Crc32 {
    /// A fresh checksum (`ngx_crc32_init`).
    pub fn new() -> Crc32 {
        Crc32(0xffff_ffff)
    }

    /// Add `bytes` (`ngx_crc32_update`).
    pub fn update(mut self, bytes: &[u8]) -> Crc32 {
        for &b in bytes {
            self.0 = CRC32_TABLE[((self.0 ^ u32::from(b)) & 0xff) as usize] ^ (self.0 >> 8);
        }
        self
    }

    /// The checksum (`ngx_crc32_final`).
    pub fn finish(self) -> u32 {
        self.0 ^ 0xffff_ffff
    }
}

/// CRC-32 of `bytes` (`ngx_crc32_long`).
pub fn crc32(bytes: &[u8]) -> u32 {
    Crc32::new().update(bytes).finish()
}

/// A 128-bit SipHash-2-4 of `data` under the key `(k0, k1)`.
pub fn siphash128(k0: u64, k1: u64, data: &[u8]) -> u128 {
    let mut s = Sip {
        v0: k0 ^ 0x736f_6d65_7073_6575,
        v1: k1 ^ 0x646f_7261_6e64_6f6d ^ 0xee,
        v2: k0 ^ 0x6c79_6765_6e65_7261,
        v3: k1 ^ 0x7465_6462_7974_6573,
    };
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        s.compress(u64::from_le_bytes(w));
    }
    let rest = chunks.remainder();
    let mut last = (data.len() as u64 & 0xff) << 56;
    for (i, &b) in rest.iter().enumerate() {
        last |= (b as u64) << (8 * i);
    }
    s.compress(last);
    s.v2 ^= 0xee;
    s.rounds(4);
    let lo = s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
    s.v1 ^= 0xdd;
    s.rounds(4);
    let hi = s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
    ((hi as u128) << 64) | lo as u128
}

/// A 64-bit digest of `words` (for checksums of fixed headers).
pub fn hash_words(words: &[u64]) -> u64 {
    let mut buf = Vec::with_capacity(words.len() * 8);
    for w in words {
        buf.extend_from_slice(&w.to_le_bytes());
    }
    siphash128(0x736c_7569_6365, 0x7a6f_6e65, &buf) as u64
}

struct Sip {
    v0: u64,
    v1: u64,
    v2: u64,
    v3: u64,
}

impl Sip {
    fn compress(&mut self, m: u64) {
        self.v3 ^= m;
        self.rounds(2);
        self.v0 ^= m;
    }

    fn rounds(&mut self, n: usize) {
        for _ in 0..n {
            self.v0 = self.v0.wrapping_add(self.v1);
            self.v1 = self.v1.rotate_left(13) ^ self.v0;
            self.v0 = self.v0.rotate_left(32);
            self.v2 = self.v2.wrapping_add(self.v3);
            self.v3 = self.v3.rotate_left(16) ^ self.v2;
            self.v0 = self.v0.wrapping_add(self.v3);
            self.v3 = self.v3.rotate_left(21) ^ self.v0;
            self.v2 = self.v2.wrapping_add(self.v1);
            self.v1 = self.v1.rotate_left(17) ^ self.v2;
            self.v2 = self.v2.rotate_left(32);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32_is_the_standard_one() {
        assert_eq!(super::crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(super::crc32(b""), 0);
        let split = super::Crc32::new()
            .update(b"1234")
            .update(b"56789")
            .finish();
        assert_eq!(split, 0xcbf4_3926);
    }

    use super::*;

    fn reference_key() -> (u64, u64) {
        let k: Vec<u8> = (0u8..16).collect();
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&k[..8]);
        b.copy_from_slice(&k[8..]);
        (u64::from_le_bytes(a), u64::from_le_bytes(b))
    }

    #[test]
    fn reference_vectors() {
        // From the SipHash reference implementation (vectors.h, 128-bit
        // output): key 00..0f, messages 00, 00 01, ...
        let (k0, k1) = reference_key();
        let expect: [[u8; 16]; 2] = [
            [
                0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6, 0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55,
                0x02, 0x93,
            ],
            [
                0xda, 0x87, 0xc1, 0xd8, 0x6b, 0x99, 0xaf, 0x44, 0x34, 0x76, 0x59, 0x11, 0x9b, 0x22,
                0xfc, 0x45,
            ],
        ];
        for (len, want) in expect.iter().enumerate() {
            let msg: Vec<u8> = (0..len as u8).collect();
            let h = siphash128(k0, k1, &msg);
            let mut got = [0u8; 16];
            got[..8].copy_from_slice(&(h as u64).to_le_bytes());
            got[8..].copy_from_slice(&((h >> 64) as u64).to_le_bytes());
            assert_eq!(&got, want, "message length {len}");
        }
    }

    #[test]
    fn key_and_input_change_the_hash() {
        let a = siphash128(1, 2, b"10.0.0.1");
        assert_ne!(a, siphash128(1, 3, b"10.0.0.1"));
        assert_ne!(a, siphash128(1, 2, b"10.0.0.2"));
        assert_eq!(a, siphash128(1, 2, b"10.0.0.1"));
        assert_ne!(hash_words(&[1, 2]), hash_words(&[2, 1]));
    }
}
