//! A hierarchical timer wheel: six levels of 64 slots over 1 ms ticks, as in tokio.
//!
//! Level 0 holds timers due within the current 64-tick block, one slot per tick; level 1
//! those within the current 64²-tick block, one slot per 64 ticks; and so on up to level 5
//! (64⁶ ticks, about 2.2 years; later deadlines wait in level 5 and are placed again when
//! their slot comes). A timer's level is the highest 6-bit group in which its deadline
//! differs from `elapsed` (the wheel's "now"), its slot that group's value. So within a level
//! the occupied slots all lie at or after `elapsed`'s own, and every timer of a level is due
//! before the first slot of the next level begins: the earliest slot is found with one
//! bit scan per level of the `occupied` masks.
//!
//! When time reaches a slot of level ≥ 1 its timers *cascade*: each is placed again, now in a
//! lower level; a slot of level 0 fires. Arming and disarming are O(1): timers live in a slab
//! and each slot is an intrusive doubly linked list through it. A key carries a generation,
//! so a stale key (its timer fired or was removed, the slab entry reused) finds nothing.

use slab::Slab;

const LEVELS: usize = 6;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
/// The ticks of the top level, less one: `elapsed | MAX_SPAN` is its block's last tick.
const MAX_SPAN: u64 = (1 << (SLOT_BITS as usize * LEVELS)) - 1;

/// Names one armed timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerKey {
    index: usize,
    generation: u64,
}

/// Which list an entry is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    Slot {
        level: usize,
        slot: usize,
    },
    /// Due already when inserted: fires at the next poll.
    Expired,
}

#[derive(Debug)]
struct Entry<T> {
    when: u64,
    generation: u64,
    value: T,
    list: List,
    prev: Option<usize>,
    next: Option<usize>,
}

#[derive(Debug)]
struct Level {
    /// Bit `s` set: slot `s` is not empty.
    occupied: u64,
    heads: [Option<usize>; SLOTS],
}

/// Timers carrying a `T` each, keyed by [`TimerKey`].
#[derive(Debug)]
pub(crate) struct Wheel<T> {
    entries: Slab<Entry<T>>,
    levels: [Level; LEVELS],
    expired: Option<usize>,
    /// The tick up to which the wheel has been polled.
    elapsed: u64,
    next_generation: u64,
}

impl<T> Wheel<T> {
    pub(crate) fn new() -> Self {
        Self {
            entries: Slab::new(),
            levels: core::array::from_fn(|_| Level { occupied: 0, heads: [None; SLOTS] }),
            expired: None,
            elapsed: 0,
            next_generation: 0,
        }
    }

    /// Timers armed.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Arms a timer due at tick `when`.
    pub(crate) fn insert(&mut self, when: u64, value: T) -> TimerKey {
        let generation = self.next_generation;
        self.next_generation += 1;
        let index = self.entries.insert(Entry { when, generation, value, list: List::Expired, prev: None, next: None });
        self.place(index);
        TimerKey { index, generation }
    }

    /// Disarms `key`, returning its value; `None` if it fired or was removed already.
    pub(crate) fn remove(&mut self, key: TimerKey) -> Option<T> {
        self.get_mut(key)?;
        self.unlink(key.index);
        Some(self.entries.remove(key.index).value)
    }

    /// The value of `key` while it is armed.
    pub(crate) fn get_mut(&mut self, key: TimerKey) -> Option<&mut T> {
        self.entries.get_mut(key.index).filter(|e| e.generation == key.generation).map(|e| &mut e.value)
    }

    /// The tick by which [`poll`](Self::poll) must be called next: the earliest deadline, or
    /// the start of the earliest slot that must cascade (never later than any deadline).
    pub(crate) fn next_expiration(&self) -> Option<u64> {
        if self.expired.is_some() {
            return Some(self.elapsed);
        }
        self.next_slot().map(|(_, _, deadline)| deadline)
    }

    /// Fires, in deadline order, every timer due at or before tick `now`, passing each to
    /// `fire` with its key.
    pub(crate) fn poll(&mut self, now: u64, mut fire: impl FnMut(TimerKey, T)) {
        loop {
            while let Some(index) = self.expired {
                self.unlink(index);
                let e = self.entries.remove(index);
                fire(TimerKey { index, generation: e.generation }, e.value);
            }
            match self.next_slot() {
                Some((level, slot, deadline)) if deadline <= now => {
                    self.elapsed = self.elapsed.max(deadline);
                    self.cascade(level, slot);
                }
                _ => break,
            }
        }
        self.elapsed = self.elapsed.max(now);
    }

    /// Takes every timer off `level`'s `slot` (whose time has come) and places it again:
    /// on the expired list if due, else in a lower level.
    fn cascade(&mut self, level: usize, slot: usize) {
        let mut next = self.levels[level].heads[slot].take();
        self.levels[level].occupied &= !(1 << slot);
        while let Some(index) = next {
            let e = &mut self.entries[index];
            next = e.next;
            e.prev = None;
            e.next = None;
            self.place(index);
        }
    }

    /// The earliest non-empty slot: its level, its index and the tick it starts at.
    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        for (level, l) in self.levels.iter().enumerate() {
            if l.occupied == 0 {
                continue;
            }
            let shift = SLOT_BITS * level as u32;
            let now_slot = (self.elapsed >> shift) as usize % SLOTS;
            // Slots at or after `elapsed`'s own, wrapping (only a timer clamped into the next
            // top-level block wraps).
            let slot = (l.occupied.rotate_right(now_slot as u32).trailing_zeros() as usize + now_slot) % SLOTS;
            let level_span = 1u64 << (shift + SLOT_BITS);
            let level_start = self.elapsed & !(level_span - 1);
            let mut deadline = level_start + ((slot as u64) << shift);
            if slot < now_slot {
                deadline += level_span;
            }
            return Some((level, slot, deadline));
        }
        None
    }

    /// Puts entry `index` (on no list) on the list its deadline calls for.
    fn place(&mut self, index: usize) {
        let when = self.entries[index].when;
        let list = if when <= self.elapsed {
            List::Expired
        } else {
            // Far deadlines wait at the last tick of the current top-level block (or the
            // first of the next, if `elapsed` is that last tick), so no slot ever lies a full
            // turn ahead of `elapsed`'s own.
            let when = when.min((self.elapsed | MAX_SPAN).max(self.elapsed + 1));
            let level = level_for(self.elapsed, when);
            List::Slot { level, slot: (when >> (SLOT_BITS * level as u32)) as usize % SLOTS }
        };
        let head = match list {
            List::Expired => &mut self.expired,
            List::Slot { level, slot } => {
                self.levels[level].occupied |= 1 << slot;
                &mut self.levels[level].heads[slot]
            }
        };
        let old = head.replace(index);
        let e = &mut self.entries[index];
        e.list = list;
        e.prev = None;
        e.next = old;
        if let Some(old) = old {
            self.entries[old].prev = Some(index);
        }
    }

    /// Takes entry `index` off its list.
    fn unlink(&mut self, index: usize) {
        let (list, prev, next) = {
            let e = &self.entries[index];
            (e.list, e.prev, e.next)
        };
        match prev {
            Some(p) => self.entries[p].next = next,
            None => match list {
                List::Expired => self.expired = next,
                List::Slot { level, slot } => {
                    self.levels[level].heads[slot] = next;
                    if next.is_none() {
                        self.levels[level].occupied &= !(1 << slot);
                    }
                }
            },
        }
        if let Some(n) = next {
            self.entries[n].prev = prev;
        }
    }
}

/// The level of a timer due at `when` (> `elapsed`, at most `MAX_SPAN` later): the 6-bit
/// group of the highest bit in which the two differ.
#[inline]
fn level_for(elapsed: u64, when: u64) -> usize {
    let masked = ((elapsed ^ when) | (SLOTS as u64 - 1)).min(MAX_SPAN);
    let significant = 63 - masked.leading_zeros() as usize;
    significant / SLOT_BITS as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Op {
        /// Arm a timer this many ticks after `elapsed` (0 = due now).
        Insert(u64),
        /// Disarm the n-th armed timer (modulo their number).
        Remove(usize),
        /// Poll this many ticks after `elapsed`.
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => prop_oneof![0..70u64, 0..5_000u64, 0..300_000u64, 0..(MAX_SPAN * 3)].prop_map(Op::Insert),
            1 => any::<usize>().prop_map(Op::Remove),
            3 => prop_oneof![0..3u64, 0..100u64, 0..10_000u64, 0..(MAX_SPAN * 2)].prop_map(Op::Advance),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 4 } else { 256 },
            // No file under Miri's isolation.
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// After every step the wheel agrees with a sorted map of (deadline, id): a poll fires
        /// exactly the due timers in deadline order, a removal finds its timer, and the next
        /// expiration is never after the earliest deadline.
        #[test]
        fn agrees_with_a_sorted_map(start in 0..MAX_SPAN * 2, ops in proptest::collection::vec(op(), 1..if cfg!(miri) { 30 } else { 120 })) {
            let mut wheel = Wheel::new();
            wheel.poll(start, |_, _: u32| unreachable!());
            let mut now = start;
            let mut model: BTreeMap<(u64, u32), TimerKey> = BTreeMap::new();
            let mut next_id = 0u32;
            for op in ops {
                match op {
                    Op::Insert(delta) => {
                        let when = now + delta;
                        let key = wheel.insert(when, next_id);
                        model.insert((when, next_id), key);
                        next_id += 1;
                    }
                    Op::Remove(n) => {
                        if let Some((&k, &key)) = model.iter().nth(n % model.len().max(1)) {
                            prop_assert_eq!(wheel.remove(key), Some(k.1));
                            prop_assert_eq!(wheel.remove(key), None);
                            model.remove(&k);
                        }
                    }
                    Op::Advance(delta) => {
                        now += delta;
                        let mut fired = Vec::new();
                        wheel.poll(now, |key, id| fired.push((key, id)));
                        let due: Vec<_> = model.range(..(now + 1, 0)).map(|(&k, &key)| (k, key)).collect();
                        prop_assert_eq!(fired.len(), due.len(), "fired {:?}, due {:?}", fired, due);
                        let mut last = 0;
                        for (key, id) in fired {
                            let (&k, _) = model.iter().find(|(k, _)| k.1 == id).expect("fired a timer not armed");
                            prop_assert!(k.0 <= now, "fired early");
                            prop_assert!(k.0 >= last, "out of deadline order");
                            last = k.0;
                            prop_assert_eq!(model.remove(&k), Some(key));
                            prop_assert!(wheel.get_mut(key).is_none(), "fired key still armed");
                        }
                    }
                }
                prop_assert_eq!(wheel.len(), model.len());
                match model.keys().next() {
                    Some(&(first, _)) => {
                        let next = wheel.next_expiration().expect("armed timers but no expiration");
                        prop_assert!(next <= first.max(now), "next expiration {} after the first deadline {}", next, first);
                    }
                    None => prop_assert_eq!(wheel.next_expiration(), None),
                }
            }
        }
    }

    #[test]
    fn a_timer_fires_on_its_tick_and_not_before() {
        let mut wheel = Wheel::new();
        let key = wheel.insert(5_000, ());
        let mut fired = 0;
        wheel.poll(4_999, |_, ()| fired += 1);
        assert_eq!(fired, 0);
        assert!(wheel.get_mut(key).is_some());
        wheel.poll(5_000, |k, ()| {
            assert_eq!(k, key);
            fired += 1;
        });
        assert_eq!(fired, 1);
        assert!(wheel.is_empty());
        assert_eq!(wheel.remove(key), None);
    }

    #[test]
    fn a_stale_key_does_not_reach_the_entry_that_reuses_its_slot() {
        let mut wheel = Wheel::new();
        let old = wheel.insert(10, 1);
        assert_eq!(wheel.remove(old), Some(1));
        let new = wheel.insert(10, 2);
        assert_eq!(wheel.remove(old), None);
        assert_eq!(wheel.get_mut(new), Some(&mut 2));
    }

    #[test]
    fn a_deadline_beyond_the_top_level_waits_and_then_fires() {
        let mut wheel = Wheel::new();
        let when = MAX_SPAN * 3 + 7;
        wheel.insert(when, ());
        let mut now = 0;
        let mut fired = false;
        while !fired {
            let next = wheel.next_expiration().unwrap();
            assert!(next <= when);
            now = next.max(now);
            wheel.poll(now, |_, ()| fired = true);
            assert!(!fired || now >= when);
        }
        assert_eq!(now, when);
    }
}
