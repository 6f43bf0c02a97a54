//! Processes: the master (`master`), workers (`worker`), the fd handoff
//! message (`handoff`), listening sockets (`listeners`), and daemon
//! plumbing (`daemon`: pid file, detaching).

pub mod daemon;
pub mod handoff;
pub mod listeners;
pub mod master;
pub mod worker;
