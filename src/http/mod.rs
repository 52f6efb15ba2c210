//! From a FastCGI request to a CGI response.
pub mod cache;
pub mod handler;
pub mod request;
pub mod response;
