//! The guide's "Common Patterns" section: main-thread coordination, the asset loading
//! pipeline, stream processing (over loopback TCP).

use super::*;

// ## Common Patterns / Main Thread Coordination
mod main_thread_coordination {
    use super::*;
    use framealloc::tokio::TaskAlloc;
    use framealloc::SmartAlloc;
    use std::io::Write as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;

    struct GameServer {
        alloc: SmartAlloc,
        // GUIDE FIX: `tokio::Runtime` is `tokio::runtime::Runtime`.
        runtime: tokio::runtime::Runtime,
    }

    impl GameServer {
        fn new() -> Self {
            Self {
                alloc: SmartAlloc::new(Default::default()),
                // GUIDE FIX: `tokio::Runtime` is `tokio::runtime::Runtime`.
                runtime: tokio::runtime::Runtime::new().unwrap(),
            }
        }

        fn run(&mut self) {
            loop {
                // Main thread frame allocation
                self.alloc.begin_frame();

                // Process network events (async)
                let network_events = self.runtime.block_on(async { self.process_network().await });

                // Process events with frame allocation
                for event in network_events {
                    self.handle_event(event);
                }

                // Update game state
                self.update_game();

                self.alloc.end_frame();
            }
        }

        async fn process_network(&self) -> Vec<NetworkEvent> {
            let alloc_clone = self.alloc.clone();

            // Spawn async tasks for network I/O
            let mut handles = Vec::new();

            for connection in self.get_connections() {
                let alloc_clone = alloc_clone.clone();
                let handle = tokio::spawn(async move {
                    let mut task = TaskAlloc::new(&alloc_clone);
                    read_connection_events(&mut task, connection).await
                });
                handles.push(handle);
            }

            // Collect all events
            let mut all_events = Vec::new();
            for handle in handles {
                all_events.extend(handle.await.unwrap());
            }

            all_events
        }
    }

    // Helpers (not in the guide). Each frame, `CLIENTS` loopback clients connect, send this
    // frame's events and close; the server reads them in tasks. The endless `run` loop is
    // ended by `update_game` after `FRAMES` frames: it unwinds with a `StopServer` payload
    // (`resume_unwind`, no panic message), which the test catches.

    const CLIENTS: u32 = 3;
    const FRAMES: u64 = 4;

    #[derive(Debug)]
    struct NetworkEvent {
        frame: u64,
        client: u32,
        action: String,
    }

    struct StopServer;

    /// `(frame, client, action)` of every event handled, and frames updated.
    static HANDLED: Mutex<Vec<(u64, u32, String)>> = Mutex::new(Vec::new());
    static UPDATED: AtomicU64 = AtomicU64::new(0);

    impl GameServer {
        fn get_connections(&self) -> Vec<TcpStream> {
            let frame = self.alloc.frame_number();
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            (0..CLIENTS)
                .map(|client| {
                    let mut peer = std::net::TcpStream::connect(addr).unwrap();
                    write!(peer, "{frame} {client} move\n{frame} {client} fire\n").unwrap();
                    drop(peer); // closes: the server side reads the events, then EOF
                    let (stream, _) = listener.accept().unwrap();
                    stream.set_nonblocking(true).unwrap();
                    TcpStream::from_std(stream).unwrap()
                })
                .collect()
        }

        /// Formats the event in frame memory (main thread, between `begin_frame` and
        /// `end_frame`) and records it.
        fn handle_event(&self, event: NetworkEvent) {
            let mut line = self.alloc.frame_vec::<u8>();
            line.extend(event.action.bytes());
            assert_eq!(event.frame, self.alloc.frame_number(), "events belong to this frame");
            let action = String::from_utf8(line.to_vec()).unwrap();
            HANDLED.lock().unwrap().push((event.frame, event.client, action));
        }

        fn update_game(&self) {
            let handled = self.alloc.frame_box(HANDLED.lock().unwrap().len());
            assert_eq!(*handled as u64, self.alloc.frame_number() * u64::from(CLIENTS) * 2);
            if UPDATED.fetch_add(1, Ordering::SeqCst) + 1 == FRAMES {
                std::panic::resume_unwind(Box::new(StopServer));
            }
        }
    }

    /// Reads the connection to its end into the task heap and parses one event per line.
    async fn read_connection_events(task: &mut TaskAlloc, mut connection: TcpStream) -> Vec<NetworkEvent> {
        let mut bytes = task.alloc_vec::<u8>();
        let mut chunk = [0u8; 16];
        loop {
            let n = connection.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&chunk[..n]);
        }
        std::str::from_utf8(&bytes)
            .unwrap()
            .lines()
            .map(|l| {
                let mut w = l.split(' ');
                let frame = w.next().unwrap().parse().unwrap();
                let client = w.next().unwrap().parse().unwrap();
                NetworkEvent { frame, client, action: w.next().unwrap().to_string() }
            })
            .collect()
    }

    #[test]
    fn the_server_loop_runs_frames_with_network_tasks() {
        let mut server = GameServer::new();
        let stop = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.run())).unwrap_err();
        assert!(stop.is::<StopServer>(), "the loop ended through update_game, not a failure");
        // The stop left the last frame open: close it as the loop would have.
        server.alloc.end_frame();

        assert_eq!(server.alloc.frame_number(), FRAMES);
        let mut handled = std::mem::take(&mut *HANDLED.lock().unwrap());
        handled.sort();
        let mut want = Vec::new();
        for frame in 1..=FRAMES {
            for client in 0..CLIENTS {
                want.push((frame, client, "fire".to_string()));
                want.push((frame, client, "move".to_string()));
            }
        }
        assert_eq!(handled, want);
        let s = assert_released(&server.alloc);
        assert_eq!(s.task.allocations, FRAMES * u64::from(CLIENTS) * 2, "{s:?}");
        assert!(s.frame.allocations >= FRAMES * (u64::from(CLIENTS) * 2 + 1), "{s:?}");
        assert_eq!(s.frame.live_bytes, 0, "{s:?}");
    }
}

// ## Common Patterns / Asset Loading Pipeline
mod asset_loading {
    use super::*;
    use framealloc::tokio::TaskAlloc;
    use std::collections::HashMap;

    struct AssetLoader {
        alloc: SmartAlloc,
        loading_queue: Vec<LoadRequest>,
        loaded_assets: HashMap<String, Asset>,
    }

    impl AssetLoader {
        async fn load_assets(&mut self) {
            let alloc_clone = self.alloc.clone();

            // Process loading queue in parallel
            let futures: Vec<_> = self
                .loading_queue
                .drain(..)
                .map(|request| {
                    let alloc_clone = alloc_clone.clone();
                    tokio::spawn(async move {
                        let mut task = TaskAlloc::new(&alloc_clone);
                        load_asset_async(&mut task, request).await
                    })
                })
                .collect();

            // Wait for all loads
            for future in futures {
                match future.await.unwrap() {
                    Ok(asset) => {
                        self.loaded_assets.insert(asset.path.clone(), asset);
                    }
                    // GUIDE FIX: a match arm's expression ends with `,`, not `;`.
                    Err(e) => eprintln!("Failed to load asset: {}", e),
                }
            }
        }
    }

    async fn load_asset_async(task: &mut TaskAlloc, request: LoadRequest) -> Result<Asset, Error> {
        // Load file data
        let file_data = task.alloc_box(read_file(&request.path).await?);

        // Parse based on type
        match request.asset_type {
            AssetType::Texture => {
                let texture = parse_texture(&file_data).await?;
                Ok(Asset::Texture(texture))
            }
            AssetType::Mesh => {
                let mesh = parse_mesh(&file_data).await?;
                Ok(Asset::Mesh(mesh))
            }
            AssetType::Audio => {
                let audio = parse_audio(&file_data).await?;
                Ok(Asset::Audio(audio))
            }
        }
    }

    // Helpers (not in the guide). Asset files start with a header line naming their kind and
    // their asset path: `TEX <path>` + `<w> <h>` + w*h bytes; `MESH <path>` + `x y z` lines;
    // `AUD <path>` + little-endian i16 samples. `Asset::Texture(..)` etc. are constructors of
    // the `Asset` struct, which keeps the path the snippet reads.

    struct LoadRequest {
        path: String,
        asset_type: AssetType,
    }

    enum AssetType {
        Texture,
        Mesh,
        Audio,
    }

    #[derive(Debug, PartialEq)]
    struct Texture {
        path: String,
        width: usize,
        height: usize,
        pixels: Vec<u8>,
    }

    #[derive(Debug, PartialEq)]
    struct Mesh {
        path: String,
        vertices: Vec<[f32; 3]>,
    }

    #[derive(Debug, PartialEq)]
    struct Audio {
        path: String,
        samples: Vec<i16>,
    }

    #[derive(Debug, PartialEq)]
    enum AssetData {
        Texture(Texture),
        Mesh(Mesh),
        Audio(Audio),
    }

    #[derive(Debug, PartialEq)]
    struct Asset {
        path: String,
        data: AssetData,
    }

    impl Asset {
        fn Texture(t: Texture) -> Asset {
            Asset { path: t.path.clone(), data: AssetData::Texture(t) }
        }

        fn Mesh(m: Mesh) -> Asset {
            Asset { path: m.path.clone(), data: AssetData::Mesh(m) }
        }

        fn Audio(a: Audio) -> Asset {
            Asset { path: a.path.clone(), data: AssetData::Audio(a) }
        }
    }

    #[derive(Debug)]
    enum Error {
        Io(std::io::Error),
        Parse(&'static str),
    }

    impl std::fmt::Display for Error {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Error::Io(e) => write!(f, "I/O error: {e}"),
                Error::Parse(what) => write!(f, "bad asset: {what}"),
            }
        }
    }

    impl From<std::io::Error> for Error {
        fn from(e: std::io::Error) -> Self {
            Error::Io(e)
        }
    }

    async fn read_file(path: &str) -> Result<Vec<u8>, Error> {
        Ok(tokio::fs::read(path).await?)
    }

    /// Splits `<tag> <path>\n<rest>`.
    fn header<'a>(data: &'a [u8], tag: &str) -> Result<(String, &'a [u8]), Error> {
        let nl = data.iter().position(|&b| b == b'\n').ok_or(Error::Parse("no header"))?;
        let line = std::str::from_utf8(&data[..nl]).map_err(|_| Error::Parse("header not UTF-8"))?;
        let path = line.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')).ok_or(Error::Parse("wrong kind"))?;
        Ok((path.to_string(), &data[nl + 1..]))
    }

    async fn parse_texture(data: &[u8]) -> Result<Texture, Error> {
        let (path, rest) = header(data, "TEX")?;
        let nl = rest.iter().position(|&b| b == b'\n').ok_or(Error::Parse("no size"))?;
        let size = std::str::from_utf8(&rest[..nl]).map_err(|_| Error::Parse("size"))?;
        let (w, h) = size.split_once(' ').ok_or(Error::Parse("size"))?;
        let (width, height): (usize, usize) =
            (w.parse().map_err(|_| Error::Parse("width"))?, h.parse().map_err(|_| Error::Parse("height"))?);
        let pixels = rest[nl + 1..].to_vec();
        if pixels.len() != width * height {
            return Err(Error::Parse("pixel count"));
        }
        tokio::task::yield_now().await;
        Ok(Texture { path, width, height, pixels })
    }

    async fn parse_mesh(data: &[u8]) -> Result<Mesh, Error> {
        let (path, rest) = header(data, "MESH")?;
        let text = std::str::from_utf8(rest).map_err(|_| Error::Parse("mesh not UTF-8"))?;
        let mut vertices = Vec::new();
        for line in text.lines() {
            let v: Vec<f32> =
                line.split(' ').map(|x| x.parse().map_err(|_| Error::Parse("coordinate"))).collect::<Result<_, _>>()?;
            vertices.push(<[f32; 3]>::try_from(v).map_err(|_| Error::Parse("vertex"))?);
            tokio::task::yield_now().await;
        }
        Ok(Mesh { path, vertices })
    }

    async fn parse_audio(data: &[u8]) -> Result<Audio, Error> {
        let (path, rest) = header(data, "AUD")?;
        if rest.len() % 2 != 0 {
            return Err(Error::Parse("odd sample bytes"));
        }
        tokio::task::yield_now().await;
        Ok(Audio { path, samples: rest.chunks(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect() })
    }

    #[test]
    fn the_pipeline_loads_every_valid_asset_in_parallel() {
        let dir = temp_dir("assets");
        let file = |name: &str, content: &[u8]| {
            let p = dir.join(name);
            std::fs::write(&p, content).unwrap();
            p.to_str().unwrap().to_string()
        };
        let mut tex = b"TEX textures/grass\n3 2\n".to_vec();
        tex.extend([1, 2, 3, 4, 5, 6]);
        let tex = file("grass.tex", &tex);
        let mesh = file("cube.mesh", b"MESH meshes/tri\n0 0 0\n1 0 0\n0 1 0.5");
        let mut aud = b"AUD sounds/beep\n".to_vec();
        aud.extend([-3i16, 7, 1000].iter().flat_map(|s| s.to_le_bytes()));
        let aud = file("beep.aud", &aud);
        let corrupt = file("bad.tex", b"TEX textures/bad\n4 4\n123");
        let missing = dir.join("missing.tex").to_str().unwrap().to_string();

        for (name, rt) in flavours() {
            let alloc = SmartAlloc::new(Default::default());
            let request = |path: &String, asset_type| LoadRequest { path: path.clone(), asset_type };
            let mut loader = AssetLoader {
                alloc: alloc.clone(),
                loading_queue: vec![
                    request(&tex, AssetType::Texture),
                    request(&mesh, AssetType::Mesh),
                    request(&aud, AssetType::Audio),
                    request(&corrupt, AssetType::Texture),
                    request(&missing, AssetType::Texture),
                ],
                loaded_assets: HashMap::new(),
            };
            rt.block_on(loader.load_assets());
            assert!(loader.loading_queue.is_empty());
            let mut keys: Vec<_> = loader.loaded_assets.keys().cloned().collect();
            keys.sort();
            assert_eq!(keys, ["meshes/tri", "sounds/beep", "textures/grass"], "{name}");
            assert_eq!(
                loader.loaded_assets["textures/grass"].data,
                AssetData::Texture(Texture {
                    path: "textures/grass".into(),
                    width: 3,
                    height: 2,
                    pixels: vec![1, 2, 3, 4, 5, 6]
                })
            );
            assert_eq!(
                loader.loaded_assets["meshes/tri"].data,
                AssetData::Mesh(Mesh {
                    path: "meshes/tri".into(),
                    vertices: vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.5]]
                })
            );
            assert_eq!(
                loader.loaded_assets["sounds/beep"].data,
                AssetData::Audio(Audio { path: "sounds/beep".into(), samples: vec![-3, 7, 1000] })
            );
            let s = assert_released(&alloc);
            assert_eq!(s.task.allocations, 4, "{name}: one boxed file per readable asset: {s:?}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}

// ## Common Patterns / Stream Processing
mod stream_processing {
    use super::*;
    use framealloc::tokio::AsyncPoolGuard;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    // GUIDE FIX: `?` needs a `Result` return type (and `Ok(())` at the end).
    async fn process_stream(alloc: &SmartAlloc, mut stream: TcpStream) -> Result<(), std::io::Error> {
        let _guard = AsyncPoolGuard::new(&alloc);

        // Buffer for incoming data
        let buffer = alloc.pool_vec::<u8>();

        loop {
            // Read chunk
            let chunk = read_chunk(&mut stream).await?;
            if chunk.is_empty() {
                break;
            }

            // Process chunk
            let processed = process_chunk(&chunk).await;

            // Write back
            write_chunk(&mut stream, &processed).await?;
        }

        // Guard ensures buffer is freed
        // GUIDE FIX: `Ok(())` for the `Result` return type.
        Ok(())
    }

    async fn process_chunk(chunk: &[u8]) -> Vec<u8> {
        // Simple transformation
        chunk.iter().map(|&b| b.wrapping_add(1)).collect()
    }

    // Helpers (not in the guide).

    /// Up to 512 bytes from the stream; empty at EOF.
    async fn read_chunk(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; 512];
        let n = stream.read(&mut buf).await?;
        buf.truncate(n);
        Ok(buf)
    }

    async fn write_chunk(stream: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
        stream.write_all(data).await
    }

    /// A loopback client: sends `rounds` messages of growing size, checks each echo is the
    /// message plus one, then closes its side.
    async fn client(addr: std::net::SocketAddr, rounds: usize) -> usize {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut total = 0;
        for round in 0..rounds {
            let msg: Vec<u8> = (0..round * 97 + 1).map(|i| (i * 31 + round) as u8).collect();
            s.write_all(&msg).await.unwrap();
            let mut back = vec![0u8; msg.len()];
            s.read_exact(&mut back).await.unwrap();
            assert!(back.iter().zip(&msg).all(|(b, m)| *b == m.wrapping_add(1)));
            total += msg.len();
        }
        s.shutdown().await.unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        total
    }

    #[test]
    fn process_stream_over_loopback_tcp() {
        for (name, rt) in flavours() {
            let alloc = SmartAlloc::new(Default::default());
            let a = alloc.clone();
            let sent = rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let server = tokio::spawn(async move {
                    // Two connections: one in a plain task, one in a task with its own heap.
                    let (s1, _) = listener.accept().await?;
                    let b = a.clone();
                    let first = tokio::spawn(async move { process_stream(&b, s1).await });
                    let (s2, _) = listener.accept().await?;
                    let b = a.clone();
                    let second = framealloc::tokio::spawn(async move { process_stream(&b, s2).await });
                    first.await.unwrap()?;
                    second.await.unwrap()
                });
                let (x, y) = tokio::join!(client(addr, 20), client(addr, 7));
                server.await.unwrap().unwrap();
                x + y
            });
            assert_eq!(sent, (0..20).map(|r| r * 97 + 1).sum::<usize>() + (0..7).map(|r| r * 97 + 1).sum::<usize>());
            let s = assert_released(&alloc);
            assert_eq!(s.guard_escapes, 0, "{name}: {s:?}");
        }
    }
}
