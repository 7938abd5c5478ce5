//! fork patch: the slot that holds one of the broker's replaceable
//! components (router, shared state, retain storage, ...).
//!
//! Upstream kept each component behind a lock and handed out the lock's guard,
//! and callers awaited the component's async methods while holding it. A lock
//! guard held across an await keeps the lock while the task is parked, and can
//! deadlock a worker thread against a writer. Readers now get an `Arc` of the
//! component and hold no lock while they await. Components are replaced only
//! while a broker starts (plugins install theirs) and after it stopped.
//!
//! The slot is an `ArcSwap`: the message path reads it with `current`, which
//! takes neither a lock nor a count (their atomics were written by every
//! worker thread, once per message), and a replaced component is still freed
//! once its last reader is done.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use parking_lot::{Mutex, MutexGuard};

pub struct Component<T: ?Sized> {
    slot: ArcSwap<Box<T>>,
    /// One writer at a time (`write`, `replace`).
    writer: Mutex<()>,
}

/// A component read on the message path (`Component::current`): held for a
/// call, not for the life of a task.
pub type Current<T> = Guard<Arc<Box<T>>>;

impl<T: ?Sized> Component<T> {
    pub fn new(value: Box<T>) -> Self {
        Self { slot: ArcSwap::from(Arc::new(value)), writer: Mutex::new(()) }
    }

    /// The current component.
    #[inline]
    pub fn get(&self) -> Arc<Box<T>> {
        self.slot.load_full()
    }

    /// The current component, without a lock or a count.
    #[inline]
    pub fn current(&self) -> Current<T> {
        self.slot.load()
    }

    /// Installs `value` and returns the component it replaces.
    pub fn replace(&self, value: Box<T>) -> Arc<Box<T>> {
        let _writer = self.writer.lock();
        self.slot.swap(Arc::new(value))
    }

    /// For `*component.write(default) = new_value`, the form upstream's
    /// `*_mut()` accessors are used in. The writer works on a fresh component
    /// from `fresh`, installed when the write access is dropped, so what is
    /// written never changes a component someone is using.
    pub fn write(&self, fresh: impl FnOnce() -> Box<T>) -> ComponentMut<'_, T> {
        let writer = self.writer.lock();
        ComponentMut { component: self, _writer: writer, value: Some(fresh()) }
    }
}

/// Write access to a component: a fresh one, installed on drop.
pub struct ComponentMut<'a, T: ?Sized> {
    component: &'a Component<T>,
    _writer: MutexGuard<'a, ()>,
    /// `None` only while it is being installed.
    value: Option<Box<T>>,
}

impl<T: ?Sized> Drop for ComponentMut<'_, T> {
    fn drop(&mut self) {
        if let Some(value) = self.value.take() {
            self.component.slot.store(Arc::new(value));
        }
    }
}

impl<T: ?Sized> Deref for ComponentMut<'_, T> {
    type Target = Box<T>;

    fn deref(&self) -> &Box<T> {
        self.value.as_ref().expect("a component under write is present until installed")
    }
}

impl<T: ?Sized> DerefMut for ComponentMut<'_, T> {
    fn deref_mut(&mut self) -> &mut Box<T> {
        self.value.as_mut().expect("a component under write is present until installed")
    }
}
