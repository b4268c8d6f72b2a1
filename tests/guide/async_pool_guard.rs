//! The guide's "AsyncPoolGuard" section: the RAII pattern and scoped resource management.

use super::*;

// ## AsyncPoolGuard / RAII Pattern
mod raii_pattern {
    use super::*;
    use framealloc::tokio::AsyncPoolGuard;
    use framealloc::PoolBox;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    async fn process_with_guard(alloc: &SmartAlloc) {
        // Guard ensures cleanup even on early return
        let _guard = AsyncPoolGuard::new(&alloc);

        // Pool allocations are automatically tracked
        let data1 = alloc.pool_alloc::<Data>();
        let data2 = alloc.pool_alloc::<MoreData>();

        // Complex async logic
        if some_condition().await {
            // Early return - guard still cleans up
            return;
        }

        // More processing
        process_data(data1, data2).await;

        // Guard drops here, cleaning up all pool allocations
    }

    // Helpers (not in the guide).

    #[derive(Default)]
    struct Data {
        values: [u32; 16],
    }

    #[derive(Default)]
    struct MoreData {
        label: String,
        total: u64,
    }

    /// What `some_condition` answers (set by the test).
    static EARLY_RETURN: AtomicBool = AtomicBool::new(false);
    /// Sum of every `MoreData::total` that `process_data` computed.
    static PROCESSED: AtomicU64 = AtomicU64::new(0);

    async fn some_condition() -> bool {
        tokio::task::yield_now().await;
        EARLY_RETURN.load(Ordering::SeqCst)
    }

    async fn process_data(mut data1: PoolBox<Data>, mut data2: PoolBox<MoreData>) {
        for (i, v) in data1.values.iter_mut().enumerate() {
            *v = i as u32 * 2;
        }
        tokio::task::yield_now().await;
        data2.total = data1.values.iter().map(|&v| u64::from(v)).sum();
        data2.label = format!("total {}", data2.total);
        assert_eq!(data2.label, "total 240");
        PROCESSED.fetch_add(data2.total, Ordering::SeqCst);
    }

    #[test]
    fn the_guard_cleans_up_on_both_paths() {
        for (name, rt) in flavours() {
            for early in [true, false] {
                EARLY_RETURN.store(early, Ordering::SeqCst);
                PROCESSED.store(0, Ordering::SeqCst);
                let alloc = SmartAlloc::new(Default::default());
                let a = alloc.clone();
                rt.block_on(async move {
                    // In a plain tokio task (the guard heap is keyed by tokio's task id) ...
                    let b = a.clone();
                    tokio::spawn(async move { process_with_guard(&b).await }).await.unwrap();
                    // ... in a task with its own heap ...
                    let b = a.clone();
                    framealloc::tokio::spawn(async move { process_with_guard(&b).await }).await.unwrap();
                    // ... and in the block_on root (no task: the guard heap is the thread's).
                    process_with_guard(&a).await;
                });
                let s = assert_released(&alloc);
                assert_eq!(s.guard_escapes, 0, "{name}: {s:?}");
                assert_eq!(
                    (s.task.allocations, s.pool.allocations),
                    (4, 2),
                    "{name}: 2 per run; tasks count as task: {s:?}"
                );
                assert_eq!(PROCESSED.load(Ordering::SeqCst), if early { 0 } else { 3 * 240 }, "{name}");
            }
        }
    }
}

// ## AsyncPoolGuard / Scoped Resource Management
mod scoped_resources {
    use super::*;
    use framealloc::tokio::AsyncPoolGuard;
    use std::sync::Mutex;

    async fn database_transaction(alloc: &SmartAlloc) -> Result<(), Error> {
        let _guard = AsyncPoolGuard::new(&alloc);

        // Begin transaction
        let tx = begin_transaction().await?;

        // Allocate query results
        // GUIDE FIX: `results` is extended below: `mut`.
        let mut results = alloc.pool_vec::<Row>();

        // Execute queries
        for query in queries {
            let rows = execute_query(&tx, query).await?;
            results.extend(rows);
        }

        // Commit or rollback
        if validate_results(&results).await {
            tx.commit().await?;
            Ok(())
        } else {
            tx.rollback().await?;
            Err(Error::ValidationFailed)
        }
        // Guard ensures all Row allocations are freed
    }

    // Helpers (not in the guide): a small in-memory table. A transaction works on a snapshot;
    // commit and rollback are recorded.

    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Row {
        id: u32,
        score: i64,
    }

    #[derive(Debug, PartialEq)]
    enum Error {
        Closed,
        BadQuery(String),
        ValidationFailed,
    }

    #[derive(Default)]
    struct Database {
        open: bool,
        rows: Vec<Row>,
        commits: u32,
        rollbacks: u32,
    }

    static DB: Mutex<Database> = Mutex::new(Database { open: false, rows: Vec::new(), commits: 0, rollbacks: 0 });

    /// The queries the transaction runs (`queries` in the snippet).
    const queries: [&str; 2] = ["score >= 50", "score < 10"];

    struct Transaction {
        snapshot: Vec<Row>,
    }

    async fn begin_transaction() -> Result<Transaction, Error> {
        tokio::task::yield_now().await;
        let db = DB.lock().unwrap();
        if !db.open {
            return Err(Error::Closed);
        }
        Ok(Transaction { snapshot: db.rows.clone() })
    }

    /// `"score >= N"` or `"score < N"`.
    async fn execute_query(tx: &Transaction, query: &str) -> Result<Vec<Row>, Error> {
        tokio::task::yield_now().await;
        let bad = || Error::BadQuery(query.to_string());
        let mut words = query.split_whitespace();
        let (field, op, value) = (words.next(), words.next(), words.next().and_then(|v| v.parse::<i64>().ok()));
        let (Some("score"), Some(op), Some(value)) = (field, op, value) else { return Err(bad()) };
        let keep: fn(i64, i64) -> bool = match op {
            ">=" => |s, v| s >= v,
            "<" => |s, v| s < v,
            _ => return Err(bad()),
        };
        Ok(tx.snapshot.iter().copied().filter(|r| keep(r.score, value)).collect())
    }

    /// Scores may not be negative.
    async fn validate_results(rows: &[Row]) -> bool {
        tokio::task::yield_now().await;
        rows.iter().all(|r| r.score >= 0)
    }

    impl Transaction {
        async fn commit(self) -> Result<(), Error> {
            DB.lock().unwrap().commits += 1;
            Ok(())
        }

        async fn rollback(self) -> Result<(), Error> {
            DB.lock().unwrap().rollbacks += 1;
            Ok(())
        }
    }

    fn reset(open: bool, scores: &[i64]) {
        let mut db = DB.lock().unwrap();
        *db = Database { open, ..Default::default() };
        db.rows = scores.iter().enumerate().map(|(i, &score)| Row { id: i as u32 + 1, score }).collect();
    }

    #[test]
    fn commit_rollback_and_early_error_all_free_the_rows() {
        for (name, rt) in flavours() {
            let alloc = SmartAlloc::new(Default::default());
            let run = |alloc: &SmartAlloc| {
                let a = alloc.clone();
                rt.block_on(async move { tokio::spawn(async move { database_transaction(&a).await }).await.unwrap() })
            };

            let counts = || {
                let db = DB.lock().unwrap();
                (db.commits, db.rollbacks)
            };
            reset(true, &[5, 60, 70, 3, 20]);
            assert_eq!(run(&alloc), Ok(()), "{name}");
            assert_eq!(counts(), (1, 0), "{name}: committed");
            reset(true, &[5, 60, -7]);
            assert_eq!(run(&alloc), Err(Error::ValidationFailed), "{name}");
            assert_eq!(counts(), (0, 1), "{name}: rolled back");
            reset(false, &[1]);
            assert_eq!(run(&alloc), Err(Error::Closed), "{name}: `?` returns early, the guard still drops");
            assert_eq!(counts(), (0, 0), "{name}");

            let s = assert_released(&alloc);
            assert_eq!((s.guard_escapes, s.pool.allocations), (0, 0), "{name}: {s:?}");
            assert!(s.task.allocations >= 2, "{name}: the rows went to the task's guard heap: {s:?}");
        }
    }
}
