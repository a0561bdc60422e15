//! Link options for the `usher` binary.

fn main() {
    // Relative relocations packed (DT_RELR, glibc 2.36+): the dynamic
    // loader reads a few kilobytes of relocations at start instead of 1.3
    // MB of `.rela.dyn`, pages that otherwise stay resident in every
    // sidecar (BENCHMARKS.md, idle RSS). The binary stays position
    // independent. Linux with glibc only; other targets link as before.
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
