//! Rego authorization for usher: the OPA-Envoy input document, regorus
//! evaluation (its compiled VM when it accepts the policy, the interpreter
//! otherwise), OPA's `io.jwt.*` builtins, and the decision mapping of
//! opa-envoy-plugin. See `policy/README.md`.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod analysis;
pub mod builtins;
mod decision;
mod engine;
mod future_imports;
mod glob;
mod http_send;
mod input;
mod jwt_encode;
mod more_builtins;
mod nesting;
mod recursion;
pub mod testing;
mod with_shim;
mod x509;

pub use decision::Decision;
pub use engine::{EvalPath, Limits, Policy, PolicyError, PolicySource, RegoVersion, DEFAULT_QUERY};
pub use input::{BodyInput, InputParts, RequestInput};
pub use testing::check_files;
