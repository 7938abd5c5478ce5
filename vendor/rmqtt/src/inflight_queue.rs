//! fork patch: the in-flight window's storage, in send order.
//!
//! rmqtt kept the window in a `DequeBTreeMap`: a `BTreeMap` of the messages
//! (each ~250 bytes, moved about on every insert and remove inside the
//! tree's nodes) beside a `VecDeque` of their ids, searched linearly on
//! every remove. Messages go out in packet id order and are mostly acked in
//! that order, so a deque of them alone does: a remove takes its message
//! out and leaves a hole, and holes are dropped once they reach the front
//! (so the front is always a message). While the ids in it are consecutive,
//! which they are (one session's ids count up, skipping 0), an id is found
//! by its distance from the front; otherwise by a scan from the front, where
//! in-order acks find it at once.

use std::collections::VecDeque;

use crate::types::PacketId;

/// Slots kept for reuse once the window empties; a larger buffer is freed
/// then, so a burst does not cost an idle connection its memory.
const KEEP_IDLE: usize = 16;

/// Values by packet id, in insertion order (`DequeBTreeMap`'s `insert`
/// semantics: a key already present keeps its place and gets the new value).
#[derive(Debug, Clone)]
pub struct InflightQueue<V> {
    slots: VecDeque<(PacketId, Option<V>)>,
    len: usize,
    /// Neighbouring slots whose ids are not consecutive: while none are, an
    /// id's place is known without a scan.
    breaks: usize,
}

/// The id after `id`, as a session counts them (0 is never an id).
#[inline]
fn succ(id: PacketId) -> PacketId {
    id.wrapping_add(1).max(1)
}

impl<V> Default for InflightQueue<V> {
    fn default() -> Self {
        InflightQueue { slots: VecDeque::new(), len: 0, breaks: 0 }
    }
}

impl<V> InflightQueue<V> {
    #[inline]
    fn position(&self, id: PacketId) -> Option<usize> {
        let front = self.slots.front()?.0;
        // Where `id` sits if the ids from the front on are consecutive.
        let guess = (id.wrapping_sub(front) as usize).wrapping_sub((id < front) as usize);
        match self.slots.get(guess) {
            Some((slot_id, Some(_))) if *slot_id == id => Some(guess),
            _ if self.breaks == 0 => None,
            _ => self.slots.iter().position(|(slot_id, v)| *slot_id == id && v.is_some()),
        }
    }

    #[inline]
    fn pop_slot(&mut self) -> Option<(PacketId, Option<V>)> {
        let slot = self.slots.pop_front()?;
        if self.slots.front().is_some_and(|next| next.0 != succ(slot.0)) {
            self.breaks -= 1;
        }
        Some(slot)
    }

    /// Drops the holes at the front, and a large buffer once empty.
    #[inline]
    fn settle(&mut self) {
        while matches!(self.slots.front(), Some((_, None))) {
            self.pop_slot();
        }
        if self.slots.is_empty() && self.slots.capacity() > KEEP_IDLE {
            self.slots = VecDeque::new();
        }
    }

    /// Appends `value` under `id`, or replaces the value of `id` in place
    /// (returning the old one).
    #[inline]
    pub fn insert(&mut self, id: PacketId, value: V) -> Option<V> {
        if let Some(i) = self.position(id) {
            return self.slots[i].1.replace(value);
        }
        if self.slots.back().is_some_and(|last| succ(last.0) != id) {
            self.breaks += 1;
        }
        self.slots.push_back((id, Some(value)));
        self.len += 1;
        None
    }

    #[inline]
    pub fn remove(&mut self, id: &PacketId) -> Option<V> {
        let i = self.position(*id)?;
        let value = self.slots[i].1.take();
        self.len -= 1;
        self.settle();
        value
    }

    #[inline]
    pub fn get(&self, id: &PacketId) -> Option<&V> {
        self.position(*id).and_then(|i| self.slots[i].1.as_ref())
    }

    #[inline]
    pub fn get_mut(&mut self, id: &PacketId) -> Option<&mut V> {
        self.position(*id).and_then(|i| self.slots[i].1.as_mut())
    }

    #[inline]
    pub fn contains_key(&self, id: &PacketId) -> bool {
        self.position(*id).is_some()
    }

    /// The oldest value.
    #[inline]
    pub fn front(&self) -> Option<(&PacketId, &V)> {
        self.slots.front().and_then(|(id, v)| v.as_ref().map(|v| (id, v)))
    }

    #[inline]
    pub fn pop_front(&mut self) -> Option<(PacketId, V)> {
        let (id, value) = self.pop_slot()?;
        self.len -= 1;
        self.settle();
        value.map(|v| (id, v))
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// In insertion order.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = (&PacketId, &V)> {
        self.slots.iter().filter_map(|(id, v)| v.as_ref().map(|v| (id, v)))
    }
}
