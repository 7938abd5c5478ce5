//! fork patch: the slot that holds one of the broker's replaceable
//! components (router, shared state, retain storage, ...).
//!
//! Upstream kept each component behind a lock and handed out the lock's guard,
//! and callers awaited the component's async methods while holding it. A lock
//! guard held across an await keeps the lock while the task is parked, and can
//! deadlock a worker thread against a writer. Readers now get an `Arc` of the
//! component and hold no lock while they await. Components are replaced only
//! while a broker starts (plugins install theirs) and after it stopped.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use parking_lot::{RwLock, RwLockWriteGuard};

pub struct Component<T: ?Sized> {
    slot: RwLock<Arc<Box<T>>>,
}

impl<T: ?Sized> Component<T> {
    pub fn new(value: Box<T>) -> Self {
        Self { slot: RwLock::new(Arc::new(value)) }
    }

    /// The current component; the lock is held only to clone the `Arc`.
    #[inline]
    pub fn get(&self) -> Arc<Box<T>> {
        self.slot.read().clone()
    }

    /// Installs `value` and returns the component it replaces.
    pub fn replace(&self, value: Box<T>) -> Arc<Box<T>> {
        std::mem::replace(&mut *self.slot.write(), Arc::new(value))
    }

    /// For `*component.write(default) = new_value`, the form upstream's
    /// `*_mut()` accessors are used in. If readers still hold the current
    /// component, the slot first gets a fresh one from `fresh`, so what is
    /// written never changes a component someone is using.
    pub fn write(&self, fresh: impl FnOnce() -> Box<T>) -> ComponentMut<'_, T> {
        let mut guard = self.slot.write();
        if Arc::get_mut(&mut guard).is_none() {
            *guard = Arc::new(fresh());
        }
        ComponentMut { guard }
    }
}

/// Write access to a component: the slot's write lock, with the `Arc` unique.
pub struct ComponentMut<'a, T: ?Sized> {
    guard: RwLockWriteGuard<'a, Arc<Box<T>>>,
}

impl<T: ?Sized> Deref for ComponentMut<'_, T> {
    type Target = Box<T>;

    fn deref(&self) -> &Box<T> {
        &self.guard
    }
}

impl<T: ?Sized> DerefMut for ComponentMut<'_, T> {
    fn deref_mut(&mut self) -> &mut Box<T> {
        // Unique: `write` made it so, and no reader can clone it while the
        // write lock is held.
        Arc::get_mut(&mut self.guard).expect("a component under its write lock has no other owner")
    }
}
