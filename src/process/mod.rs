//! Processes: the master (`master`), workers (`worker`), the fd handoff
//! message (`handoff`), listening sockets (`listeners`), daemon plumbing
//! (`daemon`: pid file, detaching), and the files handed to the workers'
//! user (`owner`).

pub mod daemon;
pub mod handoff;
pub mod listeners;
pub mod master;
pub mod owner;
pub mod worker;
