//! The guide's "Migration from Sync Code" section: the code before (sync) and after (async).

use super::*;

// ## Migration from Sync Code / Before (Sync)
mod before_sync {
    use super::*;

    fn process_data(data: &[u8]) -> Vec<u8> {
        let alloc = SmartAlloc::new(Default::default());
        alloc.begin_frame();

        let result = alloc.frame_vec::<u8>();
        // Process data...

        alloc.end_frame();
        result.into_inner()
    }

    #[test]
    fn the_sync_version_runs_and_reads_its_frame_vec_after_end_frame() {
        // The snippet leaves the processing out, so the frame vector comes back empty.
        assert_eq!(process_data(b"some input"), Vec::<u8>::new());
    }
}

// ## Migration from Sync Code / After (Async)
mod after_async {
    use super::*;
    use framealloc::tokio::TaskAlloc;

    async fn process_data_async(alloc: &SmartAlloc, data: &[u8]) -> Vec<u8> {
        let mut task = TaskAlloc::new(alloc);

        let result = task.alloc_vec::<u8>();
        // Process data asynchronously...

        result.into_inner()
    }

    #[test]
    fn the_async_version_runs_in_tasks() {
        for (name, rt) in flavours() {
            let alloc = SmartAlloc::new(Default::default());
            let a = alloc.clone();
            rt.block_on(async move {
                let b = a.clone();
                let out = tokio::spawn(async move { process_data_async(&b, b"input").await }).await.unwrap();
                assert_eq!(out, Vec::<u8>::new(), "{name}: the snippet leaves the processing out");
                let b = a.clone();
                let out =
                    framealloc::tokio::spawn(async move { process_data_async(&b, b"input").await }).await.unwrap();
                assert_eq!(out, Vec::<u8>::new());
                assert_eq!(process_data_async(&a, b"input").await, Vec::<u8>::new());
            });
            assert_released(&alloc);
        }
    }
}
