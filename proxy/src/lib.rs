//! usher: a service-mesh sidecar. Mutual TLS with SPIFFE identities on every
//! hop between services; the app speaks plain HTTP to 127.0.0.1.
//!
//! A request's path: [`outbound`] (app → route → mTLS) → network →
//! [`inbound`] (mTLS → tower stack → app); both are tower stacks topped by
//! `observe`, which hands every error to `respond`, the one place that
//! maps it to a response. Layers learn about their connection through the
//! accessors of `target`. [`sidecar`] wires it all up.
//!
//! What is `pub` here is what the `usher` binary (the usher-cli crate), the
//! integration tests, the benchmarks and the fuzz targets use; the rest is
//! crate-private, so that rustc reports what nothing uses.
#![forbid(unsafe_code)]
// The module docs link to the crate-private items they describe, for
// `cargo doc --document-private-items`.
#![allow(rustdoc::private_intra_doc_links)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod admin;
pub mod authn;
pub mod authz;
mod body;
pub mod check;
pub mod config;
pub mod connect;
mod forward;
pub mod headers;
pub mod identity;
pub mod inbound;
pub mod inject;
mod observe;
pub mod outbound;
mod respond;
pub mod sanitize;
mod serve;
pub mod sidecar;
mod target;
pub mod telemetry;
mod transparent;
mod watch;

pub use config::Config;
pub use sidecar::{BoundAddrs, DrainOutcome, Sidecar, StartError};
