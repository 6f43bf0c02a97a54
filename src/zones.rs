//! The shared-memory zones of one configuration: the traffic-limit zones
//! (`limits::ZoneSet`) and the waiting rooms (`waiting_room::RoomSet`). The
//! master opens them before forking and on every reload (keeping what it
//! can from the running set), hands them to workers, and the cluster sync
//! thread reads both. Above `limits` and `waiting_room`, so neither needs
//! the other.

use crate::config::Config;
use crate::limits::ZoneSet;
use crate::waiting_room::RoomSet;
use std::io;
use std::sync::Arc;

/// Every zone of one configuration.
#[derive(Default)]
pub struct Zones {
    /// Limit zones, indexed like `cfg.http.limits.zones`.
    pub limits: ZoneSet,
    /// Waiting rooms, indexed like the config's rooms.
    pub rooms: Arc<RoomSet>,
}

impl Zones {
    /// No zones.
    pub fn empty() -> Zones {
        Zones::default()
    }

    /// Open (or keep from `previous`) every zone and room `cfg` declares, in
    /// `cfg.state_dir`. Master only: creates, migrates and renames files.
    pub fn open(cfg: &Config, previous: Option<&Zones>) -> io::Result<Zones> {
        let limits = ZoneSet::open(cfg, previous.map(|p| &p.limits))?;
        let rooms = Arc::new(RoomSet::open(cfg, previous.map(|p| &*p.rooms))?);
        Ok(Zones { limits, rooms })
    }

    /// Whether any zone or room is global (`cluster=on`).
    pub fn has_cluster(&self) -> bool {
        self.limits.zones().iter().any(|z| z.cluster.is_some())
            || self.rooms.rooms().iter().any(|r| r.cluster.is_some())
    }
}
