//! The waiting rooms of one configuration, as the master opens them and the
//! workers use them: each [`RoomZone`] is a config zone plus its mapped
//! file `STATE_DIR/wr.NAME.zone` (the `shm::zone` machinery the limits use,
//! kind [`KIND`]). A reload keeps the mapping of a room of the same size;
//! a restart reopens the file; another size is migrated (the room's words
//! copied); a corrupt file is set aside. So everyone keeps their place.

use super::room::{Params, Room, ROOM_WORDS};
use super::token::Signer;
use crate::config::ClusterFailure;
use crate::config::{Config, RoomZoneConf};
use crate::limits::cluster::{self as cl, ClusterRt, Gate};
use crate::shm::zone::{self, Opened, ZoneMap, ZoneSpec};
use crate::util::hash::hash_words;
use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Zone kind of a waiting room (limit zones use 1-3).
pub const KIND: u64 = 16;

/// One room: configuration and mapped state.
pub struct RoomZone {
    /// The room as configured.
    pub conf: RoomZoneConf,
    map: Arc<ZoneMap>,
    /// `Some` for a `cluster=on` room under a `cluster` directive.
    pub cluster: Option<ClusterRt>,
}

impl RoomZone {
    /// The parameters of the queue.
    pub fn params(&self) -> Params {
        Params {
            interval_us: self.conf.interval_us,
            max_active: self.conf.max_active,
            session_ms: self.conf.session_ms,
            max_wait_ms: self.conf.max_wait_ms,
            mode: self.conf.mode,
            remote_active: 0,
        }
    }

    /// The shared state at `now_ms`: a synced cluster room counts the
    /// other nodes' sessions; one in failure mode `local` admits its part
    /// (capacity and rate divided by the last known node count).
    pub fn room(&self, now_ms: u64) -> Option<Room<'_>> {
        let mut p = self.params();
        match self.gate(now_ms) {
            Some(Gate::Synced { .. }) => {
                p.remote_active = Room::new(self.map.body(), p)?.remote_active_word();
            }
            Some(Gate::Failed {
                mode: ClusterFailure::Local,
                nodes,
            }) => {
                p.max_active = (p.max_active / nodes).max(1);
                p.interval_us = p.interval_us.saturating_mul(nodes);
            }
            _ => {}
        }
        Room::new(self.map.body(), p)
    }

    /// How a cluster room decides now; `None` for a local room.
    pub fn gate(&self, now_ms: u64) -> Option<Gate> {
        Some(cl::gate(self.map.header(), self.cluster.as_ref()?, now_ms))
    }

    /// The mapped file's header (the sync thread keeps its state there).
    pub fn header(&self) -> &crate::shm::zone::ZoneHeader {
        self.map.header()
    }
}

/// The rooms of one configuration and its keys.
pub struct RoomSet {
    rooms: Vec<Arc<RoomZone>>,
    /// Signs and verifies tickets and cookies.
    pub signer: Signer,
}

impl Default for RoomSet {
    fn default() -> Self {
        RoomSet {
            rooms: Vec::new(),
            signer: Signer::new(&[]),
        }
    }
}

fn file_name(name: &str) -> String {
    format!("wr.{name}")
}

impl RoomSet {
    /// Room `i` of the configuration.
    pub fn get(&self, i: usize) -> Option<&RoomZone> {
        self.rooms.get(i).map(|z| &**z)
    }

    /// All rooms.
    pub fn rooms(&self) -> &[Arc<RoomZone>] {
        &self.rooms
    }

    /// Open (or keep from `previous`) every room `cfg` declares. Master only.
    pub fn open(cfg: &Config, previous: Option<&RoomSet>) -> io::Result<RoomSet> {
        let wr = &cfg.http.waiting_rooms;
        let mut rooms = Vec::new();
        for conf in &wr.zones {
            let map = open_one(cfg, conf, previous).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "waiting room \"{}\" in {}: {e}",
                        conf.name,
                        cfg.state_dir.display()
                    ),
                )
            })?;
            rooms.push(Arc::new(RoomZone {
                conf: conf.clone(),
                cluster: ClusterRt::of(cfg.http.cluster.as_ref(), conf.cluster),
                map,
            }));
        }
        Ok(RoomSet {
            rooms,
            signer: Signer::new(&wr.keys.0),
        })
    }
}

fn open_one(
    cfg: &Config,
    conf: &RoomZoneConf,
    previous: Option<&RoomSet>,
) -> io::Result<Arc<ZoneMap>> {
    let name = &conf.name;
    let file = file_name(name);
    let layout = hash_words(&[KIND, ROOM_WORDS as u64, 1]);
    let spec = ZoneSpec {
        dir: &cfg.state_dir,
        name: &file,
        zone_bytes: conf.size_bytes,
        kind: KIND,
        slot_words: ROOM_WORDS as u64,
        layout,
        fingerprint: hash_words(&[
            layout,
            conf.interval_us,
            conf.max_active,
            conf.session_ms,
            conf.max_wait_ms,
        ]),
        seed: None,
    };
    if let Some(prev) = previous.and_then(|p| p.rooms.iter().find(|z| z.conf.name == *name)) {
        if prev.map.len() as u64 == spec.zone_bytes {
            prev.map.set_fingerprint(spec.fingerprint);
            return Ok(prev.map.clone());
        }
    }
    let map = match zone::open(&spec)? {
        Opened::Created(m) => {
            log::info!("waiting room \"{name}\": created {}", m.path().display());
            m
        }
        Opened::Existing(m) => {
            m.set_fingerprint(spec.fingerprint);
            log::info!(
                "waiting room \"{name}\": using {}, queue kept",
                m.path().display()
            );
            m
        }
        Opened::SetAside {
            new,
            moved_to,
            reason,
        } => {
            log::error!(
                "waiting room \"{name}\": zone file cannot be trusted ({reason}); set aside as {}, starting empty",
                moved_to.display()
            );
            new
        }
        Opened::Changed { old, mut new } => {
            let same_kind = old.header().kind.load(Relaxed) == KIND
                && old.header().layout.load(Relaxed) == layout;
            if same_kind {
                for (d, s) in new.body().iter().zip(old.body()).take(ROOM_WORDS) {
                    d.store(s.load(Relaxed), Relaxed);
                }
                log::warn!("waiting room \"{name}\": size changed, queue state migrated");
            } else {
                log::warn!("waiting room \"{name}\": another kind of zone file, rebuilt empty");
            }
            new.commit()?;
            new
        }
    };
    Ok(Arc::new(map))
}
