//! Small pure helpers: units, time formatting, a stable keyed hash.

pub mod hash;
pub mod httpdate;
pub mod json;
pub mod units;
