//! A TCP proxy for the tests, between the tool and a MariaDB server, that cuts connections
//! mid-stream: each of the first `cuts` connections is dropped once the server has sent it more
//! than `after_bytes`. TLS runs end to end through it, so the tool sees what a dropped VPN
//! or an idle-timeout on a tunnel looks like. With no cuts it is a plain proxy that counts the
//! bytes the server sends (what a run reads off the wire) and the client's turns: each time the
//! client sends after the server has answered, a round trip the client waited on.

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
    /// The tool's turns, over every connection: sends that follow an answer from the server.
    pub turns: Arc<AtomicU64>,
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
        let turns = Arc::new(AtomicU64::new(0));
        let (done, conns) = (cuts_done.clone(), connections.clone());
        let (down, turned) = (bytes_down.clone(), turns.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                conns.fetch_add(1, Ordering::SeqCst);
                let done = done.clone();
                let down = down.clone();
                let turned = turned.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)).await else {
                        return;
                    };
                    // Decide at connect time whether this connection will be cut.
                    let cut = done.load(Ordering::SeqCst) < cuts;
                    let limit = if cut { Some(after_bytes) } else { None };
                    pipe(client, server, limit, Counters { done, down, turned }, delay).await;
                });
            }
        });
        CuttingProxy {
            port,
            cuts_done,
            connections,
            bytes_down,
            turns,
            task,
        }
    }
}

/// What every connection adds to.
struct Counters {
    done: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
    turned: Arc<AtomicU64>,
}

async fn pipe(
    client: TcpStream,
    server: TcpStream,
    limit: Option<u64>,
    counters: Counters,
    delay: std::time::Duration,
) {
    let Counters { done, down, turned } = counters;
    // As the tool and the server themselves do: without it, Nagle's algorithm holds a short
    // write until the last one is acknowledged, and the peer's delayed ACK makes that 40 ms, a
    // wait no real link between them adds.
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    // Set before an answer is passed on, so the send it causes always finds it set.
    let answered = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let heard = answered.clone();
    let up = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if heard.swap(false, Ordering::SeqCst) {
                turned.fetch_add(1, Ordering::SeqCst);
            }
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
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
        answered.store(true, Ordering::SeqCst);
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
