//! rmqtt's session channel (`vendor/rmqtt/src/channel.rs`).

use rmqtt::channel::{unbounded, TryRecvError};

#[tokio::test]
async fn delivers_in_order_and_ends_with_the_last_sender() {
  let (tx, mut rx) = unbounded();
  let tx2 = tx.clone();
  tx.send(1).unwrap();
  tx2.send(2).unwrap();
  assert_eq!(rx.try_recv(), Ok(1));
  tx.send(3).unwrap();
  assert_eq!(rx.recv().await, Some(2));
  assert_eq!(rx.recv().await, Some(3));
  assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
  // A receiver waiting when the message comes is woken; once every sender
  // is gone it gets what was left, then the end.
  let waiter = tokio::spawn(async move { (rx.recv().await, rx.recv().await) });
  tokio::task::yield_now().await;
  tx2.send(4).unwrap();
  drop((tx, tx2));
  assert_eq!(waiter.await.unwrap(), (Some(4), None));
}

#[test]
fn sends_fail_once_the_receiver_is_gone() {
  let (tx, rx) = unbounded();
  tx.send(0).unwrap();
  assert!(!tx.is_closed());
  drop(rx);
  assert!(tx.is_closed());
  assert_eq!(tx.send(5).unwrap_err().into_inner(), 5);
}

#[test]
fn a_burst_keeps_its_order_and_an_idle_receiver_frees_its_buffers() {
  let (tx, mut rx) = unbounded();
  for i in 0..1000 {
    tx.send(i).unwrap();
  }
  for i in 0..500 {
    assert_eq!(rx.try_recv(), Ok(i));
  }
  // Sent while the receiver holds a batch: after it, in order.
  tx.send(1000).unwrap();
  for i in 500..=1000 {
    assert_eq!(rx.try_recv(), Ok(i));
  }
  assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
  // The 1,000-message buffer is gone; a small one (at most 16 each) may stay.
  assert!(rx.buffered_capacity() <= 32, "{}", rx.buffered_capacity());
}

#[test]
fn senders_on_other_threads_lose_nothing() {
  let (tx, mut rx) = unbounded();
  let threads: Vec<_> = (0..4u64)
    .map(|t| {
      let tx = tx.clone();
      std::thread::spawn(move || {
        for i in 0..10_000u64 {
          tx.send((t, i)).unwrap();
        }
      })
    })
    .collect();
  drop(tx);
  let rt = tokio::runtime::Builder::new_current_thread()
    .build()
    .unwrap();
  let mut next = [0u64; 4];
  rt.block_on(async {
    while let Some((t, i)) = rx.recv().await {
      assert_eq!(i, next[t as usize], "thread {t} out of order");
      next[t as usize] += 1;
    }
  });
  for t in threads {
    t.join().unwrap();
  }
  assert_eq!(next, [10_000; 4]);
}

/// A waker that counts its wakes.
struct Count(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Count {
  fn wake(self: std::sync::Arc<Self>) {
    self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
  }
}

#[test]
fn a_waiting_receiver_is_woken_by_the_send_that_finds_the_queue_empty() {
  use std::sync::atomic::Ordering::SeqCst;
  use std::task::{Context, Poll};
  let (tx, mut rx) = unbounded();
  let count = std::sync::Arc::new(Count(Default::default()));
  let waker = std::task::Waker::from(count.clone());
  let mut cx = Context::from_waker(&waker);
  for round in 1..=3 {
    assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
    for i in 0..100 {
      tx.send(i).unwrap();
    }
    // The first send found the queue empty and woke the receiver (the
    // others skip the waker: patch 0058).
    assert_eq!(count.0.load(SeqCst), round);
    for i in 0..100 {
      assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(i)));
    }
  }
  // Queued ahead of the rest, the same rule.
  assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
  tx.send_first(7).unwrap();
  tx.send_first(6).unwrap();
  assert_eq!(count.0.load(SeqCst), 4);
  assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(6)));
  assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(7)));
}
