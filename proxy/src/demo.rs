//! demo placeholder
pub fn run() -> Result<(), crate::cli::CliError> {
    Ok(())
}
