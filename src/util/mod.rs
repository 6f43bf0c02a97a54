//! Small pure helpers: units, time formatting.

pub mod units;
