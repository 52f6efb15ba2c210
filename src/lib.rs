//! videofeed: a FastCGI responder that answers a video discovery site's
//! search feed (`GET /feed?q=&region=&limit=`) from SQLite FTS5.
//!
//! One persistent process, started by the web server (LiteSpeed, lighttpd,
//! spawn-fcgi) with a listening socket on fd 0 or bound by itself, runs a
//! poller and a fixed pool of worker threads; each worker owns a read-only
//! SQLite connection. Writes go through one writer thread.
//!
//! The folders are concerns and dependencies point down this list (checked by
//! `tests/layout.rs`; the map and the request and write paths are drawn in
//! `docs/architecture.md`):
//! - [`server`]: listener (fd 0 or bound), poller for idle connections, the
//!   worker pool, signals, the in-serve thumbnail checker;
//! - [`http`]: dispatch (panic guard, timing), routes, the feed, admin and ops
//!   handlers, query parsing, the typed response, the response cache;
//! - [`search`] (read-only: reader, SQL, tokenizer, typo rule, bm25, the rank
//!   index) and [`jobs`] (thumbnail checks, channel enrichment on one pipeline);
//! - [`store`]: the database file and the write side (schema and migrations,
//!   video validation, import, the writer thread, job tables, demo corpus);
//! - [`obs`]: metrics and the health answer;
//! - leaves: [`config`] (every setting and default), [`fcgi`] (the sans-IO
//!   FastCGI protocol), [`timefmt`] (date formats), `sys` (the few libc and
//!   SQLite FFI calls).

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
pub mod text;
pub mod timefmt;
