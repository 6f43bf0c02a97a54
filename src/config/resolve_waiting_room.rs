//! Typed resolution, part 4: the waiting-room directives.
//!
//! - `http`: `waiting_room_zone NAME:SIZE admit_rate=N/m max_active=N
//!   session=TIME [max_wait=TIME] [mode=fifo|random|reject] [bind_ip=on|off];`
//!   and `waiting_room_secret FILE;` (lines `KEY_ID SECRET`, `#` comments;
//!   the first key signs, all verify). A missing, empty or world-readable
//!   secret file is an error, as is a room without a secret;
//! - `http` and `location`: `waiting_room_page FILE;` (a location's own
//!   overrides the http one);
//! - `location`: `waiting_room NAME;`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::parse::Directive;
use super::types_waiting_room::{LocationRoom, RoomKeys, RoomMode, RoomZoneConf, WaitingRoomsConf};
use super::values::{arg0, path_arg, Spec, HTTP, LOCATION};
use super::ConfigError;
use crate::util::units::{parse_duration_ms, parse_number, parse_size};

/// The waiting-room directives, for the generic checks in `resolve.rs`.
pub(super) const SPECS: &[Spec] = &[
    Spec::new("waiting_room_zone", HTTP, 1, 8).repeatable(),
    Spec::new("waiting_room_secret", HTTP, 1, 1),
    Spec::new("waiting_room_page", HTTP | LOCATION, 1, 1),
    Spec::new("waiting_room", LOCATION, 1, 1),
];

/// Longest key id (see `waiting_room::token`).
const MAX_KEY_ID: usize = 16;
/// Shortest secret, bytes.
const MIN_SECRET: usize = 16;
/// Largest template file.
const MAX_PAGE_BYTES: u64 = 64 * 1024;

/// `http`-level waiting-room state while resolving.
#[derive(Debug, Default)]
pub(super) struct HttpRooms {
    conf: WaitingRoomsConf,
    page: Option<Arc<str>>,
    first_zone: Option<Directive>,
}

/// A location's own waiting-room directives.
#[derive(Debug, Default)]
pub(super) struct LocationRooms {
    room: Option<(String, Directive)>,
    page: Option<Arc<str>>,
}

fn read_page(d: &Directive, conf_dir: &Path) -> Result<Arc<str>, ConfigError> {
    let path = path_arg(d, conf_dir, arg0(d))?;
    let meta = std::fs::metadata(&path)
        .map_err(|e| d.error(format!("cannot read \"{}\": {e}", path.display())))?;
    if meta.len() > MAX_PAGE_BYTES {
        return Err(d.error(format!(
            "\"{}\" is larger than {MAX_PAGE_BYTES} bytes",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| d.error(format!("cannot read \"{}\": {e}", path.display())))?;
    Ok(text.into())
}

impl HttpRooms {
    /// Applies an http-level waiting-room directive; `Ok(false)` otherwise.
    pub(super) fn apply(&mut self, d: &Directive, conf_dir: &Path) -> Result<bool, ConfigError> {
        match d.name.as_str() {
            "waiting_room_zone" => {
                let z = room_zone(d)?;
                if self.conf.zones.iter().any(|o| o.name == z.name) {
                    return Err(d.error(format!("duplicate waiting room zone \"{}\"", z.name)));
                }
                self.conf.zones.push(z);
                self.first_zone.get_or_insert_with(|| d.clone());
            }
            "waiting_room_secret" => {
                let path = path_arg(d, conf_dir, arg0(d))?;
                self.conf.keys = read_secret(d, &path)?;
                self.conf.secret_path = Some(path);
            }
            "waiting_room_page" => self.page = Some(read_page(d, conf_dir)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Rooms declared so far.
    pub(super) fn zone_count(&self) -> usize {
        self.conf.zones.len()
    }

    /// The name of a `cluster=on` room declared after the first `since`.
    pub(super) fn cluster_zone_since(&self, since: usize) -> Option<String> {
        let new = self.conf.zones.get(since..)?;
        new.iter().find(|z| z.cluster).map(|z| z.name.clone())
    }

    /// The rooms, checked: rooms need a secret.
    pub(super) fn finish(&self) -> Result<WaitingRoomsConf, ConfigError> {
        if let (Some(z), Some(d)) = (self.conf.zones.first(), &self.first_zone) {
            if self.conf.keys.0.is_empty() {
                return Err(d.error(format!(
                    "waiting room zone \"{}\" needs a \"waiting_room_secret\"",
                    z.name
                )));
            }
        }
        Ok(self.conf.clone())
    }

    /// A location's room, its name resolved.
    pub(super) fn location(&self, own: LocationRooms) -> Result<Option<LocationRoom>, ConfigError> {
        let Some((name, d)) = own.room else {
            return Ok(None);
        };
        let zone = self
            .conf
            .zones
            .iter()
            .position(|z| z.name == name)
            .ok_or_else(|| d.error(format!("unknown waiting room zone \"{name}\"")))?;
        Ok(Some(LocationRoom {
            zone,
            page: own.page.or_else(|| self.page.clone()),
        }))
    }
}

impl LocationRooms {
    /// Applies a location's waiting-room directive; `Ok(false)` otherwise.
    pub(super) fn apply(&mut self, d: &Directive, conf_dir: &Path) -> Result<bool, ConfigError> {
        match d.name.as_str() {
            "waiting_room" => self.room = Some((arg0(d).to_string(), d.clone())),
            "waiting_room_page" => self.page = Some(read_page(d, conf_dir)?),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

fn read_secret(d: &Directive, path: &PathBuf) -> Result<RoomKeys, ConfigError> {
    let shown = path.display();
    let meta = std::fs::metadata(path)
        .map_err(|e| d.error(format!("cannot read secret file \"{shown}\": {e}")))?;
    if meta.permissions().mode() & 0o004 != 0 {
        return Err(d.error(format!(
            "secret file \"{shown}\" is world-readable (chmod o-r)"
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| d.error(format!("cannot read secret file \"{shown}\": {e}")))?;
    let mut keys: Vec<(String, Vec<u8>)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |m: &str| d.error(format!("secret file \"{shown}\" line {}: {m}", n + 1));
        let mut words = line.split_whitespace();
        let (Some(id), Some(secret), None) = (words.next(), words.next(), words.next()) else {
            return Err(bad("expected \"KEY_ID SECRET\""));
        };
        let id_ok = id.len() <= MAX_KEY_ID
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        if !id_ok {
            return Err(bad(
                "key id must be 1-16 letters, digits, \"_\", \"-\", \".\"",
            ));
        }
        if secret.len() < MIN_SECRET {
            return Err(bad("secret shorter than 16 bytes"));
        }
        if keys.iter().any(|(i, _)| i == id) {
            return Err(bad(&format!("duplicate key id \"{id}\"")));
        }
        keys.push((id.to_string(), secret.as_bytes().to_vec()));
    }
    if keys.is_empty() {
        return Err(d.error(format!("secret file \"{shown}\" has no keys")));
    }
    Ok(RoomKeys(keys))
}

fn room_zone(d: &Directive) -> Result<RoomZoneConf, ConfigError> {
    let first = arg0(d);
    let (name, size) = first
        .split_once(':')
        .ok_or_else(|| d.error(format!("invalid zone \"{first}\", expected NAME:SIZE")))?;
    super::values::check_zone_name(d, name)?;
    let size_bytes = parse_size(size)
        .and_then(|b| b.checked_next_multiple_of(4096))
        .filter(|&b| b >= 8192)
        .ok_or_else(|| d.error(format!("invalid zone size \"{size}\" (at least 8k)")))?;
    let mut z = RoomZoneConf {
        name: name.to_string(),
        size_bytes,
        interval_us: 0,
        max_active: 0,
        session_ms: 0,
        max_wait_ms: 30 * 60_000,
        mode: RoomMode::Fifo,
        bind_ip: false,
        cluster: false,
        line: d.line,
    };
    let mut seen: Vec<&str> = Vec::new();
    for a in d.args.iter().skip(1) {
        let bad = || d.error(format!("invalid parameter \"{a}\""));
        let (k, v) = a.split_once('=').ok_or_else(bad)?;
        if seen.contains(&k) {
            return Err(bad());
        }
        seen.push(k);
        match k {
            "admit_rate" => {
                let (n, per_us) = if let Some(n) = v.strip_suffix("/m") {
                    (n, 60_000_000)
                } else if let Some(n) = v.strip_suffix("/s") {
                    (n, 1_000_000)
                } else {
                    return Err(d.error(format!("invalid admit_rate \"{v}\" (N/m or N/s)")));
                };
                let n = parse_number(n)
                    .filter(|&n| n > 0 && n <= 1_000_000)
                    .ok_or_else(|| d.error(format!("invalid admit_rate \"{v}\"")))?;
                z.interval_us = per_us / n;
            }
            "max_active" => {
                z.max_active = parse_number(v)
                    .filter(|&n| n > 0 && n < 1 << 24)
                    .ok_or_else(|| d.error(format!("invalid max_active \"{v}\"")))?;
            }
            "session" => {
                z.session_ms = parse_duration_ms(v)
                    .filter(|&t| t >= 1000)
                    .ok_or_else(|| d.error(format!("invalid session \"{v}\" (at least 1s)")))?;
            }
            "max_wait" => {
                z.max_wait_ms = parse_duration_ms(v)
                    .filter(|&t| t > 0)
                    .ok_or_else(|| d.error(format!("invalid max_wait \"{v}\"")))?;
            }
            "mode" => {
                z.mode = match v {
                    "fifo" => RoomMode::Fifo,
                    "random" => RoomMode::Random,
                    "reject" => RoomMode::Reject,
                    _ => {
                        return Err(d.error(format!("invalid mode \"{v}\" (fifo, random, reject)")))
                    }
                };
            }
            "bind_ip" => {
                z.bind_ip = match v {
                    "on" => true,
                    "off" => false,
                    _ => return Err(bad()),
                };
            }
            "cluster" => z.cluster = super::values::cluster_flag(d, v)?,
            _ => return Err(bad()),
        }
    }
    for (k, missing) in [
        ("admit_rate", z.interval_us == 0),
        ("max_active", z.max_active == 0),
        ("session", z.session_ms == 0),
    ] {
        if missing {
            return Err(d.error(format!("\"waiting_room_zone\" must have \"{k}\" parameter")));
        }
    }
    Ok(z)
}
