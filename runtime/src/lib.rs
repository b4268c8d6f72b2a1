//! framealloc's work-stealing runtime: executor, reactor, timers, net and frame loop.
//!
//! Not built yet: this package reserves its place in the workspace (see the project issues).
