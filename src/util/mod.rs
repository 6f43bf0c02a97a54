//! Small pure helpers: units, time formatting.
