//! Task heaps: size-class blocks in chunks with an owner fast path (see [`core`]).

pub(crate) mod blocks;
pub(crate) mod class;
pub(crate) mod core;
pub(crate) mod slot;

pub(crate) use self::core::HeapCore;
pub(crate) use self::slot::TaskSlot;
