//! `auth_basic` (nginx's auth_basic module): the client's Basic
//! credentials checked against an htpasswd file. Formats: bcrypt (`$2y$`,
//! `$2b$`, `$2a$`), SHA-crypt (`$5$`, `$6$`), MD5-crypt (`$apr1$`, `$1$`),
//! `{SHA}`, `{SSHA}`, `{PLAIN}`. Each worker keeps the file's text and
//! reads it again when its mtime, size or inode change (no reload needed),
//! and remembers the (user, password, hash) triples it verified — as a
//! SHA-256 digest, never the password — so bcrypt is not paid on every
//! request.

use base64::Engine as _;
use md5::{Digest as _, Md5};
use sha2::Sha256;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Verified digests kept at most (then forgotten at once).
const MAX_VERIFIED: usize = 4096;

/// The user and password of an `Authorization: Basic ...` value.
pub fn basic_credentials(v: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let v = v.trim_ascii();
    if v.len() < 6 || !v[..6].eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let b64 = v[6..].trim_ascii();
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let colon = raw.iter().position(|&b| b == b':')?;
    Some((raw[..colon].to_vec(), raw[colon + 1..].to_vec()))
}

/// What checking the credentials found.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    /// The user and password match.
    Ok,
    /// No or bad credentials: 401.
    Denied,
    /// The file cannot be read: 500.
    Error,
}

/// One htpasswd file as last read.
struct UserFile {
    stamp: (SystemTime, u64, u64),
    text: Vec<u8>,
}

/// A worker's htpasswd files and verified credentials.
#[derive(Default)]
pub struct AuthFiles {
    files: HashMap<PathBuf, UserFile>,
    verified: HashSet<[u8; 32]>,
}

impl AuthFiles {
    /// Check `authorization` (the header's value, if any) against `file`.
    pub fn check(&mut self, file: &Path, authorization: Option<&[u8]>) -> Check {
        let Some((user, pass)) = authorization.and_then(basic_credentials) else {
            log::info!("no user/password was provided for basic authentication");
            return Check::Denied;
        };
        let text = match load(&mut self.files, file) {
            Ok(t) => t,
            Err(e) => {
                log::error!("open() \"{}\" failed: {e}", file.display());
                return Check::Error;
            }
        };
        let Some(hash) = find_user(text, &user) else {
            log::error!(
                "user \"{}\" was not found in \"{}\"",
                String::from_utf8_lossy(&user),
                file.display()
            );
            return Check::Denied;
        };
        let mut d = Sha256::new();
        for part in [&user[..], &pass, hash] {
            d.update((part.len() as u64).to_le_bytes());
            d.update(part);
        }
        let key: [u8; 32] = d.finalize().into();
        if self.verified.contains(&key) {
            return Check::Ok;
        }
        if verify(&pass, hash) {
            if self.verified.len() >= MAX_VERIFIED {
                self.verified.clear();
            }
            self.verified.insert(key);
            return Check::Ok;
        }
        log::error!(
            "user \"{}\": password mismatch",
            String::from_utf8_lossy(&user)
        );
        Check::Denied
    }
}

/// `file`'s text, read again if it changed.
fn load<'a>(files: &'a mut HashMap<PathBuf, UserFile>, file: &Path) -> std::io::Result<&'a [u8]> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(file)?;
    let stamp = (m.modified()?, m.len(), m.ino());
    let fresh = files.get(file).is_some_and(|f| f.stamp == stamp);
    if !fresh {
        let text = std::fs::read(file)?;
        files.insert(file.to_path_buf(), UserFile { stamp, text });
    }
    Ok(files.get(file).map_or(&[][..], |f| &f.text))
}

/// The hash of `user` in htpasswd `text` (`user:hash[:comment]` lines,
/// `#` comments).
fn find_user<'a>(text: &'a [u8], user: &[u8]) -> Option<&'a [u8]> {
    text.split(|&b| b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first() == Some(&b'#') {
            return None;
        }
        let colon = line.iter().position(|&b| b == b':')?;
        if &line[..colon] != user {
            return None;
        }
        let rest = &line[colon + 1..];
        let end = rest.iter().position(|&b| b == b':').unwrap_or(rest.len());
        Some(&rest[..end])
    })
}

/// Whether `pass` matches the stored `hash`.
pub fn verify(pass: &[u8], hash: &[u8]) -> bool {
    if let Some(p) = hash.strip_prefix(b"{PLAIN}") {
        return ct_eq(pass, p);
    }
    if let Some(b64) = hash.strip_prefix(b"{SHA}") {
        let want = base64::engine::general_purpose::STANDARD.decode(b64);
        return want.is_ok_and(|w| ct_eq(&sha1::Sha1::digest(pass), &w));
    }
    if let Some(b64) = hash.strip_prefix(b"{SSHA}") {
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            return false;
        };
        if raw.len() < 20 {
            return false;
        }
        let (want, salt) = raw.split_at(20);
        let mut d = sha1::Sha1::new();
        d.update(pass);
        d.update(salt);
        return ct_eq(&d.finalize(), want);
    }
    let (Ok(p), Ok(h)) = (std::str::from_utf8(pass), std::str::from_utf8(hash)) else {
        return false;
    };
    if h.starts_with("$apr1$") || h.starts_with("$1$") {
        let magic = if h.starts_with("$1$") {
            "$1$"
        } else {
            "$apr1$"
        };
        let salt = h[magic.len()..].split('$').next().unwrap_or("");
        return ct_eq(md5_crypt(pass, salt.as_bytes(), magic).as_bytes(), hash);
    }
    if h.starts_with("$2a$") || h.starts_with("$2b$") || h.starts_with("$2y$") {
        return bcrypt::verify(p, h).unwrap_or(false);
    }
    if h.starts_with("$5$") {
        return sha_crypt::sha256_check(p, h).is_ok();
    }
    if h.starts_with("$6$") {
        return sha_crypt::sha512_check(p, h).is_ok();
    }
    log::error!("unsupported password hash format (crypt(3) DES and others are not supported)");
    false
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// MD5-crypt (`$1$`, and Apache's `$apr1$`, the same with another magic).
fn md5_crypt(pw: &[u8], salt: &[u8], magic: &str) -> String {
    let salt = &salt[..salt.len().min(8)];
    let mut alt = Md5::new();
    alt.update(pw);
    alt.update(salt);
    alt.update(pw);
    let alt = alt.finalize();
    let mut ctx = Md5::new();
    ctx.update(pw);
    ctx.update(magic.as_bytes());
    ctx.update(salt);
    let mut left = pw.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alt[..n]);
        left -= n;
    }
    let mut i = pw.len();
    while i != 0 {
        if i & 1 != 0 {
            ctx.update([0u8]);
        } else {
            ctx.update(&pw[..1]);
        }
        i >>= 1;
    }
    let mut fin = ctx.finalize();
    for i in 0..1000 {
        let mut c = Md5::new();
        if i & 1 != 0 {
            c.update(pw);
        } else {
            c.update(fin);
        }
        if i % 3 != 0 {
            c.update(salt);
        }
        if i % 7 != 0 {
            c.update(pw);
        }
        if i & 1 != 0 {
            c.update(fin);
        } else {
            c.update(pw);
        }
        fin = c.finalize();
    }
    const ITOA64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(magic.len() + salt.len() + 23);
    out.push_str(magic);
    out.push_str(&String::from_utf8_lossy(salt));
    out.push('$');
    let mut put = |v: u32, n: usize| {
        let mut v = v;
        for _ in 0..n {
            out.push(char::from(ITOA64[(v & 0x3f) as usize]));
            v >>= 6;
        }
    };
    let f = |i: usize| u32::from(fin[i]);
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        put((f(a) << 16) | (f(b) << 8) | f(c), 4);
    }
    put(f(11), 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_decoded_and_need_a_colon() {
        assert_eq!(
            basic_credentials(b"Basic dXNlcjpwYTpzcw=="),
            Some((b"user".to_vec(), b"pa:ss".to_vec()))
        );
        assert_eq!(
            basic_credentials(b"basic   dXNlcjo="),
            Some((b"user".to_vec(), vec![]))
        );
        assert_eq!(basic_credentials(b"Basic dXNlcg=="), None);
        assert_eq!(basic_credentials(b"Bearer abc"), None);
        assert_eq!(basic_credentials(b"Basic !!!"), None);
    }

    #[test]
    fn known_hashes_verify() {
        // The crate docs' and OpenSSL's published examples.
        assert!(verify(
            b"password",
            b"$apr1$lZL6V/ci$eIMz/iKDkbtys/uU7LEK00"
        ));
        assert!(!verify(
            b"passwort",
            b"$apr1$lZL6V/ci$eIMz/iKDkbtys/uU7LEK00"
        ));
        assert_eq!(
            md5_crypt(b"password", b"RandSalt", "$apr1$"),
            "$apr1$RandSalt$PgCXHRrkpSt4cbyC2C6bm/"
        );
        assert!(verify(b"password", b"{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="));
        assert!(verify(b"pw", b"{PLAIN}pw"));
        assert!(!verify(b"pw", b"{PLAIN}pW"));
        assert!(!verify(b"pw", b"abDES1234567"));
    }

    #[test]
    fn users_are_found_past_comments_and_comments_fields() {
        let text = b"# comment\nann:{PLAIN}a:ignored\r\nbob:{PLAIN}b\n";
        assert_eq!(find_user(text, b"ann"), Some(&b"{PLAIN}a"[..]));
        assert_eq!(find_user(text, b"bob"), Some(&b"{PLAIN}b"[..]));
        assert_eq!(find_user(text, b"# comment"), None);
        assert_eq!(find_user(text, b"carl"), None);
    }
}
