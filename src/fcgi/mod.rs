//! Our own FastCGI 1.0 implementation: the sans-IO record codec, one
//! connection's request state machine, and a small client.
//!
//! It imports nothing from the rest of the crate, so it could move into a
//! crate of its own unchanged. Why not the `fastcgi` crate: see
//! `docs/decisions/0001-own-fastcgi-module.md` (it panics on accept errors and on kept-alive
//! connections closed by the server, and spawns a thread per connection).

pub mod client;
pub mod conn;
pub mod record;
