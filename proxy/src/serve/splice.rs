//! Two byte streams joined until one side ends, the listener shuts down,
//! or nothing moves for the idle timeout (a passthrough connection must not
//! hold its `max_connections` slot forever).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::Activity;

/// Copies both ways between `a` and `b`; the bytes `a` → `b` and `b` → `a`
/// (what had moved when it was cut, on shutdown or idleness).
pub(crate) async fn splice<A, B>(
    a: A,
    mut b: B,
    shutdown: &CancellationToken,
    idle_timeout: Duration,
) -> (u64, u64)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let ops = Arc::new(AtomicU64::new(0));
    let mut a = Activity {
        io: a,
        ops: ops.clone(),
    };
    let copy = tokio::io::copy_bidirectional(&mut a, &mut b);
    tokio::pin!(copy);
    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::now() + idle_timeout, idle_timeout);
    let mut seen = 0;
    loop {
        tokio::select! {
            r = copy.as_mut() => return r.unwrap_or_default(),
            () = shutdown.cancelled() => return (0, 0),
            _ = ticker.tick() => {
                let now = ops.load(Ordering::Relaxed);
                if now == seen {
                    tracing::debug!("closing an idle passthrough connection");
                    return (0, 0);
                }
                seen = now;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bytes_flow_both_ways_and_silence_ends_it() {
        let (mut client, a) = tokio::io::duplex(64);
        let (b, mut server) = tokio::io::duplex(64);
        let shutdown = CancellationToken::new();
        let joined =
            tokio::spawn(async move { splice(a, b, &shutdown, Duration::from_millis(100)).await });
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        server.write_all(b"pong").await.unwrap();
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        // Nothing more: the splice ends on its own after an idle period or
        // two, with neither side closing (the deadline only bounds a bug).
        let ended = tokio::time::timeout(Duration::from_secs(5), joined).await;
        assert!(ended.is_ok(), "an idle splice must end");
        drop((client, server));
    }
}
