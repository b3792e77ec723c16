//! With feature `tokio`, an `#[isolated] async fn` body runs inside a fresh
//! current-thread tokio runtime in the child: tokio's timers, IO and
//! `spawn` work there, whatever the caller runs on (even a tokio runtime,
//! whose "inside a runtime" marker the child inherits).

use std::time::{Duration, Instant};

use mem_isolate::errors::CallableStatusUnknownError as Unknown;
use mem_isolate::{isolated, MemIsolateError};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[isolated(timeout = "10s")]
async fn slept(ms: u64) -> u64 {
    let start = Instant::now();
    tokio::time::sleep(Duration::from_millis(ms)).await;
    u64::try_from(start.elapsed().as_millis()).unwrap()
}

/// A loopback echo over tokio's sockets, with a spawned task.
#[isolated(timeout = "10s")]
async fn echoed(message: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64];
        let n = socket.read(&mut buf).await.unwrap();
        socket.write_all(&buf[..n]).await.unwrap();
    });
    let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
    client.write_all(message.as_bytes()).await.unwrap();
    let mut back = vec![0u8; message.len()];
    client.read_exact(&mut back).await.unwrap();
    server.await.unwrap();
    String::from_utf8(back).unwrap()
}

/// The timeout is the parent's, not the body's runtime's.
#[isolated(timeout = "200ms")]
async fn sleeps_too_long() -> u8 {
    tokio::time::sleep(Duration::from_mins(1)).await;
    0
}

async fn all() {
    assert!(slept(50).await.unwrap() >= 50);
    assert_eq!(echoed("ping".into()).await.unwrap(), "ping");
    assert!(matches!(
        sleeps_too_long().await,
        Err(MemIsolateError::CallableStatusUnknown(Unknown::TimedOut(_)))
    ));
}

#[test]
fn from_a_plain_block_on() {
    futures::executor::block_on(all());
}

#[test]
fn from_a_tokio_current_thread_runtime() {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_tokio_tasks() {
    let calls: Vec<_> = (0..8).map(|_| tokio::spawn(slept(100))).collect();
    for call in calls {
        assert!(call.await.unwrap().unwrap() >= 100);
    }
    tokio::spawn(all()).await.unwrap();
}
