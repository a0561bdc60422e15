//! Transparent interception: what a listener needs when `usher init-net`
//! redirected the connection instead of the app dialling usher — the
//! connection's original destination, and which protocol the first bytes
//! speak.

pub(crate) mod detect;
pub(crate) mod orig_dst;
pub(crate) mod prefixed;
