//! `ssl_session_cache shared:NAME:SIZE` for rustls: sessions stored in the
//! shared table (`shm::tls_sessions`), so a client resumes on any worker,
//! for `ssl_session_timeout`.

use crate::shm::tls_sessions::SessionTable;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A named shared session cache.
#[derive(Debug, Clone)]
pub struct SharedSessions {
    table: Arc<SessionTable>,
    timeout_s: u64,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl SharedSessions {
    /// A cache of about `bytes` of shared memory, keeping sessions
    /// `timeout_s` seconds.
    pub fn new(bytes: u64, timeout_s: u64) -> std::io::Result<SharedSessions> {
        Ok(SharedSessions {
            table: Arc::new(SessionTable::new(bytes)?),
            timeout_s: timeout_s.max(1),
        })
    }

    /// The same table with another timeout (a server sharing the zone).
    pub fn with_timeout(&self, timeout_s: u64) -> SharedSessions {
        SharedSessions {
            table: self.table.clone(),
            timeout_s: timeout_s.max(1),
        }
    }
}

impl rustls::server::StoresServerSessions for SharedSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.table.put(&key, &value, now() + self.timeout_s)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.table.get(key, now(), false)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.table.get(key, now(), true)
    }

    fn can_cache(&self) -> bool {
        true
    }
}
