//! rmqtt's in-flight window storage (`vendor/rmqtt/src/inflight_queue.rs`):
//! the map-in-send-order behaviour of the `DequeBTreeMap` it replaced, for
//! acks in order, out of order, ids that wrap, and ids that are not
//! consecutive.

use rmqtt::inflight_queue::InflightQueue;

fn ids(q: &InflightQueue<u32>) -> Vec<u16> {
  q.iter().map(|(id, _)| *id).collect()
}

#[test]
fn in_order_acks_empty_it() {
  let mut q = InflightQueue::default();
  for id in 1..=100u16 {
    assert_eq!(q.insert(id, id as u32 * 10), None);
  }
  assert_eq!(q.len(), 100);
  for id in 1..=100u16 {
    assert_eq!(q.front(), Some((&id, &(id as u32 * 10))));
    assert_eq!(q.remove(&id), Some(id as u32 * 10));
    assert_eq!(q.remove(&id), None, "removed twice");
  }
  assert!(q.is_empty());
  assert_eq!(q.front(), None);
}

#[test]
fn out_of_order_acks_keep_the_rest_in_send_order() {
  let mut q = InflightQueue::default();
  for id in 10..20u16 {
    q.insert(id, id as u32);
  }
  assert_eq!(q.remove(&15), Some(15));
  assert_eq!(q.remove(&11), Some(11));
  assert_eq!(q.remove(&10), Some(10));
  assert_eq!(ids(&q), vec![12, 13, 14, 16, 17, 18, 19]);
  assert_eq!(q.front(), Some((&12, &12)));
  assert_eq!(q.len(), 7);
  assert!(!q.contains_key(&15));
  assert_eq!(q.get(&16), Some(&16));
  *q.get_mut(&16).unwrap() = 160;
  assert_eq!(q.pop_front(), Some((12, 12)));
  assert_eq!(q.pop_front(), Some((13, 13)));
  assert_eq!(q.pop_front(), Some((14, 14)));
  // The hole where 15 was is skipped: the front is always a message.
  assert_eq!(q.front(), Some((&16, &160)));
  assert_eq!(q.pop_front(), Some((16, 160)));
  assert_eq!(ids(&q), vec![17, 18, 19]);
}

#[test]
fn an_id_present_keeps_its_place_and_gets_the_new_value() {
  let mut q = InflightQueue::default();
  for id in [1u16, 2, 3] {
    q.insert(id, id as u32);
  }
  assert_eq!(q.insert(2, 20), Some(2));
  assert_eq!(q.len(), 3);
  assert_eq!(
    q.iter().map(|(id, v)| (*id, *v)).collect::<Vec<_>>(),
    vec![(1, 1), (2, 20), (3, 3)]
  );
}

#[test]
fn ids_that_wrap_or_skip_are_found() {
  let mut q = InflightQueue::default();
  // Wrapping past u16::MAX skips 0, and transferred messages keep ids
  // that are not consecutive with the new ones.
  let sent = [65533u16, 65534, 65535, 1, 2, 900, 3, 7];
  for id in sent {
    q.insert(id, id as u32);
  }
  for id in sent {
    assert_eq!(q.get(&id), Some(&(id as u32)), "id {id}");
  }
  assert!(!q.contains_key(&0));
  assert!(!q.contains_key(&4));
  for id in [900u16, 1, 65535, 7] {
    assert_eq!(q.remove(&id), Some(id as u32));
  }
  assert_eq!(ids(&q), vec![65533, 65534, 2, 3]);
  for id in [65533u16, 65534, 2, 3] {
    assert_eq!(q.remove(&id), Some(id as u32));
  }
  assert!(q.is_empty());
}

#[test]
fn a_gap_in_the_ids_is_found_past_and_forgotten_once_it_leaves() {
  let mut q = InflightQueue::default();
  for id in [1u16, 2, 3, 10, 11] {
    q.insert(id, id as u32);
  }
  assert_eq!(q.get(&11), Some(&11));
  assert!(!q.contains_key(&4));
  for id in [1u16, 2, 3] {
    assert_eq!(q.remove(&id), Some(id as u32));
  }
  // Consecutive again from the front: found by distance.
  q.insert(12, 12);
  assert_eq!(ids(&q), vec![10, 11, 12]);
  assert_eq!(q.get(&12), Some(&12));
  assert!(!q.contains_key(&3));
  assert!(!q.contains_key(&13));
}

#[test]
fn matches_a_map_in_insertion_order_over_a_random_workload() {
  // A small deterministic generator: no dependency for one test.
  let mut seed = 0x9e3779b97f4a7c15u64;
  let mut next = move || {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    seed
  };
  let mut q = InflightQueue::default();
  let mut model: Vec<(u16, u32)> = Vec::new();
  let mut next_id = 60_000u16;
  for step in 0..200_000u32 {
    match next() % 4 {
      0 | 1 if model.len() < 64 => {
        // Now and then a gap, as when ids still in use are skipped.
        let gap = if next() % 50 == 0 { 1 + next() % 5 } else { 1 };
        next_id = next_id.wrapping_add(gap as u16).max(1);
        assert_eq!(q.insert(next_id, step), None);
        model.push((next_id, step));
      }
      2 if !model.is_empty() => {
        // Mostly the oldest, as acks come; sometimes any.
        let i = if next() % 3 == 0 {
          (next() % model.len() as u64) as usize
        } else {
          0
        };
        let (id, v) = model.remove(i);
        assert_eq!(q.remove(&id), Some(v));
      }
      3 if !model.is_empty() => {
        assert_eq!(q.pop_front(), Some(model.remove(0)));
      }
      _ => {}
    }
    assert_eq!(q.len(), model.len());
    assert_eq!(q.front().map(|(id, v)| (*id, *v)), model.first().copied());
  }
  assert_eq!(q.iter().map(|(id, v)| (*id, *v)).collect::<Vec<_>>(), model);
}
