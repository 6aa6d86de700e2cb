//! The tokio baseline: the heartbeat server a competent Rust user writes on
//! tokio's current-thread runtime. One task per connection; `read_exact` of
//! the 8-byte header; `tokio::time::timeout(interval × misses)` around each
//! read as the liveness deadline; one `write_all` of the response.
//!
//! Choices made to keep the baseline strong:
//! - Current-thread runtime: the comparison is one core against one core,
//!   and it spares the work-stealing scheduler's cross-thread wakeups.
//! - No `BufReader`: with one request in flight per connection (heartbeats,
//!   and flood at depth 1) every read returns exactly one frame, so a buffer
//!   saves no syscall, while its 8 KiB allocation per connection (at least
//!   one touched page of it) would be most of the per-connection memory.
//!   It would only pay off for deeply pipelined peers, which is not the
//!   workload. Pipelined requests are still answered correctly: `read_exact`
//!   asks for 8 bytes, so the next frame stays in the kernel for the next
//!   read.
//! - No `BufWriter`: each response must leave now (it is what the peer is
//!   waiting on), so buffering would only add a flush per reply.
//! - The header lives in the task's own state: no allocation per read.
//! - TCP_NODELAY, as every server in the comparison.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const REQUEST: [u8; 8] = [0, 0, 0, 0, 8, 0, 0, 0];
const RESPONSE: [u8; 8] = [1, 0, 0, 0, 8, 0, 0, 0];

/// Serves until killed; a peer silent for `deadline` is dropped.
pub fn serve(addr: SocketAddr, deadline: Duration) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(connection(stream, deadline));
                }
                // EMFILE and friends: back off instead of spinning; the
                // pending connections wait in the backlog.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
}

async fn connection(mut stream: TcpStream, deadline: Duration) {
    let _ = stream.set_nodelay(true);
    let mut header = [0u8; 8];
    loop {
        match tokio::time::timeout(deadline, stream.read_exact(&mut header)).await {
            Ok(Ok(_)) => {}
            // Silent past the deadline, closed, or failed: drop the peer.
            Ok(Err(_)) | Err(_) => return,
        }
        if header == REQUEST {
            if stream.write_all(&RESPONSE).await.is_err() {
                return;
            }
        } else if header != RESPONSE {
            // Anything but a heartbeat is a protocol error for this server.
            return;
        }
    }
}
