//! sluice command line.
fn main() {}
