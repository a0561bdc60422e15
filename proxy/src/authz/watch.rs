//! Reloading the policy when its files change on disk.
//!
//! The folders holding the policy and data files are watched, not the files:
//! editors and Kubernetes ConfigMaps replace files by renaming, which a watch
//! on the file itself would miss. Any event in those folders schedules a
//! reload after a short quiet period (so a burst of writes is one reload); a
//! reload that finds the same revision does nothing.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::PolicyStore;

/// Events closer together than this are one change.
const QUIET: Duration = Duration::from_millis(100);

/// Starts watching; the watcher stops with `shutdown`.
pub fn spawn_watcher(
    store: Arc<PolicyStore>,
    shutdown: CancellationToken,
) -> Result<(), notify::Error> {
    let config = store.config();
    let dirs: BTreeSet<PathBuf> = config
        .files
        .iter()
        .chain(config.data.iter())
        .map(|f| match f.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        })
        .collect();
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if !event.kind.is_access() {
                // A full channel already means "reload pending".
                let _ = tx.try_send(());
            }
        }
    })?;
    for dir in &dirs {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    tokio::spawn(async move {
        let _watcher = watcher; // dropped (and stopped) with this task
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                got = rx.recv() => {
                    if got.is_none() {
                        break;
                    }
                    // Let a burst of writes settle, then reload once.
                    tokio::time::sleep(QUIET).await;
                    while rx.try_recv().is_ok() {}
                    let store = store.clone();
                    let _ = tokio::task::spawn_blocking(move || store.reload("file change")).await;
                }
            }
        }
    });
    Ok(())
}
