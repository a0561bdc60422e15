//! Nothing here: the crate exists for its benchmarks (`cargo bench -p
//! usher-benches`); see BENCHMARKS.md.
#![forbid(unsafe_code)]
