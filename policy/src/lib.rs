//! Rego authorization for usher.
//!
//! Not built yet: policy evaluation (OPA-Envoy input, regorus engine,
//! decisions) is tracked by its own issue. The crate exists so the workspace
//! has the layout the design fixes; the inbound tower stack in `proxy` has
//! the seam where the authorization layer will slot in.
#![forbid(unsafe_code)]
