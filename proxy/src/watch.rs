//! Following files on disk: policies, identity files, JWT key sets.
//!
//! The folders holding the files are watched, not the files: editors,
//! configuration management and Kubernetes ConfigMaps/Secrets replace files
//! by renaming, which a watch on the file itself would miss. A burst of
//! events is one change: [`DirWatch::changed`] returns after a short quiet
//! period.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Events closer together than this are one change.
const QUIET: Duration = Duration::from_millis(100);

pub(crate) struct DirWatch {
    // Dropped (and stopped) with this value.
    _watcher: RecommendedWatcher,
    rx: mpsc::Receiver<()>,
}

impl DirWatch {
    /// Watches the folders of `files`.
    pub(crate) fn new<'a>(
        files: impl IntoIterator<Item = &'a Path>,
    ) -> Result<DirWatch, notify::Error> {
        let dirs: BTreeSet<PathBuf> = files
            .into_iter()
            .map(|f| match f.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            })
            .collect();
        let (tx, rx) = mpsc::channel::<()>(1);
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event {
                    if !event.kind.is_access() {
                        // A full channel already means "change pending".
                        let _ = tx.try_send(());
                    }
                }
            })?;
        for dir in &dirs {
            watcher.watch(dir, RecursiveMode::NonRecursive)?;
        }
        Ok(DirWatch {
            _watcher: watcher,
            rx,
        })
    }

    /// Waits for a change and lets a burst of writes settle; `None` once
    /// the watcher has stopped.
    pub(crate) async fn changed(&mut self) -> Option<()> {
        self.rx.recv().await?;
        tokio::time::sleep(QUIET).await;
        while self.rx.try_recv().is_ok() {}
        Some(())
    }
}
