//! The `usher` binary: see `usher --help`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    usher_proxy::cli::main()
}
