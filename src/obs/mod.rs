//! Observability: process counters ([`metrics`]) and the health answer ([`health`]).
pub mod health;
pub mod metrics;
