//! Frame memory: per-thread bump arenas recycled in O(1) at `begin_frame`.

pub(crate) mod arena;
pub(crate) mod boxed;
pub(crate) mod chunk;
pub(crate) mod scope;
pub(crate) mod vec;

pub use boxed::{FrameBox, FrameSlice};
pub use scope::{FrameScope, ScopedBox};
pub use vec::FrameVec;
