//! Small pure helpers: units, time formatting.

pub mod httpdate;
pub mod units;
