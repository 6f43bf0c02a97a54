#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice::waiting_room::token::{Kind, Scope, Signer};
use std::net::{IpAddr, Ipv4Addr};

fuzz_target!(|data: &[u8]| {
    let s = Signer::new(&[("k1".to_string(), b"a secret of enough length!".to_vec())]);
    let scope = Scope {
        zone: b"room",
        path: b"/",
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    let _ = s.verify(data, Kind::Ticket, &scope, 1 << 40);
    let _ = s.verify(data, Kind::Session, &scope, 1 << 40);
});
