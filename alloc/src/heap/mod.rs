//! Task heaps: size-class blocks in chunks with an owner fast path (see [`core`]), and pool
//! blocks that name their heap ([`placed`]).

pub(crate) mod blocks;
pub(crate) mod class;
pub(crate) mod core;
pub(crate) mod placed;

pub(crate) use self::core::{HeapCore, ParkedHeap};
