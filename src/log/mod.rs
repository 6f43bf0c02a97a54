//! Logging: access-log line formats.
pub mod format;
