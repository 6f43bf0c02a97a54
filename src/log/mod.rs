//! Logs: the async log thread (`writer`), the error log behind the `log`
//! facade (`error`), and access-log line formats (`format`).

pub mod error;
pub mod format;
pub mod writer;
