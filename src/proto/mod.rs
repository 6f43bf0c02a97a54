//! HTTP protocol rules that several layers share and that need no
//! connection, config or I/O: conditional-request evaluation (`cond`, used
//! by static files and by the cache's revalidation). A leaf: it uses only
//! `util`.
pub mod cond;
