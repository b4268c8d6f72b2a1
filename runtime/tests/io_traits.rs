//! Our streams under both ecosystems' I/O traits: line codecs of `futures` and (feature
//! `tokio`) of tokio, over loopback.
#![cfg(not(miri))] // no sockets under Miri

mod common;

use common::runtime;
use framealloc_alloc::SmartAlloc;
use framealloc_runtime::net::{TcpListener, TcpStream};
use std::time::Duration;

/// A server task answering each line with its length, until EOF.
async fn line_length_server(listener: TcpListener) -> usize {
    use futures::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let (stream, _) = listener.accept().await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut served = 0;
    while let Some(line) = futures::StreamExt::next(&mut lines).await {
        let line = line.unwrap();
        write.write_all(format!("{}\n", line.len()).as_bytes()).await.unwrap();
        served += 1;
    }
    write.close().await.unwrap();
    served
}

#[test]
fn futures_io_line_codec_on_a_stream() {
    use futures::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(2, &alloc);
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = framealloc_runtime::spawn(line_length_server(listener));
        let mut client = BufReader::new(TcpStream::connect(addr).await.unwrap());
        let mut answer = String::new();
        for word in ["a", "frame", "allocator!"] {
            client.get_mut().write_all(format!("{word}\n").as_bytes()).await.unwrap();
            answer.clear();
            client.read_line(&mut answer).await.unwrap();
            assert_eq!(answer.trim(), word.len().to_string());
        }
        client.get_mut().close().await.unwrap();
        answer.clear();
        assert_eq!(client.read_line(&mut answer).await.unwrap(), 0, "EOF after the server closed");
        assert_eq!(framealloc_runtime::time::timeout(Duration::from_secs(20), server).await.unwrap().unwrap(), 3);
    });
}

#[cfg(feature = "tokio")]
#[test]
fn tokio_io_line_codec_on_a_stream() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(2, &alloc);
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = framealloc_runtime::spawn(line_length_server(listener));
        let stream = TcpStream::connect(addr).await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        for word in ["tokio", "codecs", "work"] {
            write.write_all(format!("{word}\n").as_bytes()).await.unwrap();
            write.flush().await.unwrap();
            let line = lines.next_line().await.unwrap().expect("an answer");
            assert_eq!(line, word.len().to_string());
        }
        write.shutdown().await.unwrap();
        assert_eq!(lines.next_line().await.unwrap(), None);
        assert_eq!(framealloc_runtime::time::timeout(Duration::from_secs(20), server).await.unwrap().unwrap(), 3);
    });
}
