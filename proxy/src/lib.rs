//! usher: a service-mesh sidecar. Mutual TLS with SPIFFE identities on every
//! hop between services; the app speaks plain HTTP to 127.0.0.1.
//!
//! A request's path: [`outbound`] (app → route → mTLS) → network →
//! [`inbound`] (mTLS → tower stack → app); both are tower stacks topped by
//! [`observe`], which hands every error to [`respond`], the one place that
//! maps it to a response. Layers learn about their connection through the
//! accessors of [`target`]. [`sidecar`] wires it all up.
#![forbid(unsafe_code)]

pub mod admin;
pub mod authn;
pub mod authz;
pub mod body;
pub mod check;
pub mod config;
pub mod connect;
pub mod forward;
pub mod headers;
pub mod identity;
pub mod inbound;
pub mod inject;
pub mod observe;
pub mod outbound;
pub mod respond;
pub mod sanitize;
pub mod serve;
pub mod sidecar;
pub mod target;
pub mod telemetry;
pub mod transparent;
pub mod watch;

pub use config::Config;
pub use sidecar::{BoundAddrs, DrainOutcome, Sidecar, StartError};
