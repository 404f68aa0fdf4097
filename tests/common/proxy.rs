//! A TCP proxy for the tests, between the tool and a MariaDB server, that cuts connections
//! mid-stream: each of the first `cuts` connections is dropped once the server has sent it more
//! than `after_bytes`. TLS runs end to end through it, so the tool sees what a dropped VPN
//! or an idle-timeout on a tunnel looks like. With no cuts it is a plain proxy that counts the
//! bytes the server sends: what a run reads off the wire.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct CuttingProxy {
    pub port: u16,
    pub cuts_done: Arc<AtomicU64>,
    pub connections: Arc<AtomicU64>,
    /// Bytes from the server to the tool, over every connection.
    pub bytes_down: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CuttingProxy {
    pub async fn start(upstream_port: u16, after_bytes: u64, cuts: u64) -> CuttingProxy {
        CuttingProxy::start_with_delay(upstream_port, after_bytes, cuts, std::time::Duration::ZERO).await
    }

    /// A proxy that holds what the server sends for `delay` before passing it on: a link whose
    /// round trip is at least `delay` (a VPN, a tunnel), for the choices the tool makes by it.
    pub async fn delayed(upstream_port: u16, delay: std::time::Duration) -> CuttingProxy {
        CuttingProxy::start_with_delay(upstream_port, u64::MAX, 0, delay).await
    }

    async fn start_with_delay(
        upstream_port: u16,
        after_bytes: u64,
        cuts: u64,
        delay: std::time::Duration,
    ) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cuts_done = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(AtomicU64::new(0));
        let bytes_down = Arc::new(AtomicU64::new(0));
        let (done, conns) = (cuts_done.clone(), connections.clone());
        let down = bytes_down.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                conns.fetch_add(1, Ordering::SeqCst);
                let done = done.clone();
                let down = down.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)).await else {
                        return;
                    };
                    // Decide at connect time whether this connection will be cut.
                    let cut = done.load(Ordering::SeqCst) < cuts;
                    let limit = if cut { Some(after_bytes) } else { None };
                    pipe(client, server, limit, done, down, delay).await;
                });
            }
        });
        CuttingProxy {
            port,
            cuts_done,
            connections,
            bytes_down,
            task,
        }
    }
}

async fn pipe(
    client: TcpStream,
    server: TcpStream,
    limit: Option<u64>,
    done: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
    delay: std::time::Duration,
) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
    });
    let mut buf = vec![0u8; 16 * 1024];
    let mut sent = 0u64;
    loop {
        let n = match sr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if cw.write_all(&buf[..n]).await.is_err() {
            break;
        }
        sent += n as u64;
        down.fetch_add(n as u64, Ordering::SeqCst);
        if limit.is_some_and(|l| sent > l) {
            done.fetch_add(1, Ordering::SeqCst);
            break; // dropping both halves resets the connection mid-stream
        }
    }
    up.abort();
}
