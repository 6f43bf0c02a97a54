//! Tests of the waiting-room directives: zones, the secret file, locations.

use super::tests::{http, load_err, load_ok, TempDir};
use super::*;
use std::os::unix::fs::PermissionsExt;

fn secret(dir: &TempDir, text: &str, mode: u32) -> String {
    let p = dir.0.join("wr.key");
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p.display().to_string()
}

const KEYS: &str = "# current first\nk2 0123456789abcdef0123\nk1 fedcba9876543210fedc\n";

#[test]
fn zone_secret_and_location_resolve() {
    let d = TempDir::new("wr-ok");
    let key = secret(&d, KEYS, 0o600);
    let c = load_ok(&http(&format!(
        "waiting_room_zone shop:1m admit_rate=20/m max_active=100 session=10m mode=random;\n\
         waiting_room_secret {key};\n\
         server {{\nlocation /shop/ {{ waiting_room shop; }}\n}}"
    )));
    let wr = &c.http.waiting_rooms;
    let z = &wr.zones[0];
    assert_eq!(
        (z.name.as_str(), z.size_bytes, z.interval_us, z.max_active),
        ("shop", 1 << 20, 3_000_000, 100)
    );
    assert_eq!(
        (z.session_ms, z.max_wait_ms, z.mode),
        (600_000, 1_800_000, RoomMode::Random)
    );
    let ids: Vec<&str> = wr.keys.0.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(ids, ["k2", "k1"]);
    assert!(
        !format!("{wr:?}").contains("0123456789abcdef"),
        "Debug shows a secret"
    );
    let loc = c.http.servers[0]
        .locations
        .iter()
        .find(|l| l.path == "/shop/")
        .unwrap();
    assert_eq!(loc.waiting_room.as_ref().map(|r| r.zone), Some(0));
}

#[test]
fn bad_secret_files_are_config_errors() {
    let d = TempDir::new("wr-bad");
    let conf = |key: &str| {
        http(&format!(
            "waiting_room_zone shop:1m admit_rate=20/m max_active=100 session=10m;\n\
             waiting_room_secret {key};"
        ))
    };
    let missing = d.0.join("none.key").display().to_string();
    let e = load_err(&conf(&missing));
    assert!(
        e.to_string().contains(":4:") && e.to_string().contains("cannot read"),
        "{e}"
    );
    let world = secret(&d, KEYS, 0o644);
    assert!(load_err(&conf(&world))
        .to_string()
        .contains("world-readable"));
    let empty = secret(&d, "# nothing\n", 0o600);
    assert!(load_err(&conf(&empty)).to_string().contains("no keys"));
    let short = secret(&d, "k1 short\n", 0o600);
    assert!(load_err(&conf(&short))
        .to_string()
        .contains("shorter than 16"));
    let e = load_err(&http(
        "waiting_room_zone shop:1m admit_rate=20/m max_active=100 session=10m;",
    ));
    assert!(
        e.to_string().contains("needs a \"waiting_room_secret\""),
        "{e}"
    );
}

#[test]
fn bad_zones_and_references() {
    let d = TempDir::new("wr-zone");
    let key = secret(&d, KEYS, 0o600);
    for (zone, msg) in [
        (
            "shop:1m max_active=1 session=1m",
            "\"admit_rate\" parameter",
        ),
        (
            "shop:1m admit_rate=0/m max_active=1 session=1m",
            "invalid admit_rate",
        ),
        (
            "shop:1m admit_rate=5/h max_active=1 session=1m",
            "invalid admit_rate",
        ),
        (
            "shop:1m admit_rate=5/m max_active=1 session=1m mode=lifo",
            "invalid mode",
        ),
        (
            "shop:1 admit_rate=5/m max_active=1 session=1m",
            "invalid zone size",
        ),
        ("shop admit_rate=5/m max_active=1 session=1m", "NAME:SIZE"),
    ] {
        let e = load_err(&http(&format!(
            "waiting_room_secret {key};\nwaiting_room_zone {zone};"
        )));
        assert!(e.to_string().contains(msg), "{zone}: {e}");
    }
    let e = load_err(&http(&format!(
        "waiting_room_secret {key};\nserver {{\nlocation / {{ waiting_room nope; }}\n}}"
    )));
    assert!(
        e.to_string().contains("unknown waiting room zone \"nope\""),
        "{e}"
    );
}
