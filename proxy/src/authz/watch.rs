//! Reloading the policy when its files change on disk.
//!
//! The folders holding the policy and data files are watched, not the files:
//! editors and Kubernetes ConfigMaps replace files by renaming, which a watch
//! on the file itself would miss. Any event in those folders schedules a
//! reload after a short quiet period (so a burst of writes is one reload); a
//! reload that finds the same revision does nothing. The watching itself is
//! [`crate::watch::DirWatch`].

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::PolicyStore;
use crate::watch::DirWatch;

/// Starts watching; the watcher stops with `shutdown`.
pub(crate) fn spawn_watcher(
    store: Arc<PolicyStore>,
    shutdown: CancellationToken,
) -> Result<(), notify::Error> {
    let config = store.config();
    let files = config
        .files
        .iter()
        .chain(config.data.iter())
        .map(|p| p.as_path());
    let mut watch = DirWatch::new(files)?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                changed = watch.changed() => {
                    if changed.is_none() {
                        break;
                    }
                    let store = store.clone();
                    let _ = tokio::task::spawn_blocking(move || store.reload("file change")).await;
                }
            }
        }
    });
    Ok(())
}
