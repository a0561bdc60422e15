//! usher's integration tests, one binary: real sockets on ephemeral
//! loopback ports, real TLS with certificates from the real CA code, real
//! sidecars (in process, through the same start-up as `usher run`) and the
//! real `usher` binary for what an operator runs (signals, the command
//! line, network namespaces). `support` is what they share.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod authn;
mod bounds;
mod cli;
mod demo;
mod enforcement;
mod identity;
mod interop;
mod mesh;
mod mux;
mod netns;
mod policy;
mod policy_cli;
mod policy_decision_log;
mod process;
mod telemetry;
mod trace_export;
mod transparent;
