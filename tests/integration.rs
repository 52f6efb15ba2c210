//! The one integration test binary: the real `videofeed` binary, real sockets,
//! real FastCGI clients and web servers. See `tests/util` for the harness.

mod admin;
mod consistency;
mod correctness;
mod docs;
mod faults;
mod fcgi_wire;
mod feed_api;
mod fronts;
mod fronts_matrix;
mod import;
mod jobs;
mod layout;
mod lsws_config;
mod operability;
mod regression;
mod replica;
mod util;
