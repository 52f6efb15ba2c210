//! videofeed: a FastCGI responder that answers a video discovery site's
//! search feed (`GET /feed?q=&region=&limit=`) from SQLite FTS5.
//!
//! One persistent process, started by the web server (LiteSpeed, lighttpd,
//! spawn-fcgi) with a listening socket on fd 0 or bound by itself, runs a
//! fixed pool of worker threads; each owns a read-only SQLite connection and
//! serves one FastCGI connection at a time. Admin commands (`init`, `import`,
//! `demo`) write through a single writer connection.
//!
//! Modules, top to bottom: [`server`] (listener, workers, signals) →
//! [`fcgi`] (our FastCGI protocol) → [`handler`] (routes) → [`request`]
//! (query string) → [`search`] (SQLite) → [`response`] (CGI + JSON).
//! [`ingest`], [`demo`] and [`db`] are the write side; [`config`] builds the
//! serve configuration. [`health`] and [`metrics`] answer `/feed/health` and
//! `/feed/metrics`; [`jobs`] are the background network jobs (thumbnail
//! checks, channel enrichment) that write through [`writer`].

pub mod config;
pub mod fcgi;
#[cfg(test)]
mod fuzz_tests;
pub mod http;
pub mod jobs;
pub mod obs;
pub mod search;
pub mod server;
pub mod store;
mod sys;
pub mod timefmt;
