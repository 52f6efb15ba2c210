//! The write side and the database file.
pub mod db;
pub mod demo;
pub mod import;
pub mod writer;
