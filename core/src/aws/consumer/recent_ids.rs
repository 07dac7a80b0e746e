//! A bounded set of recently seen event ids, to drop the duplicates that producer retries put
//! on the stream (each event carries an id from the edge).

use std::collections::{HashSet, VecDeque};
use tally_model::event::EventId;

/// The last `capacity` distinct ids seen.
#[derive(Debug)]
pub struct RecentIds {
    capacity: usize,
    set: HashSet<EventId>,
    order: VecDeque<EventId>,
}

impl RecentIds {
    /// An empty set that remembers up to `capacity` ids.
    pub fn new(capacity: usize) -> RecentIds {
        RecentIds { capacity: capacity.max(1), set: HashSet::new(), order: VecDeque::new() }
    }

    /// Records `id`; returns false if it was seen already (a duplicate).
    pub fn first_time(&mut self, id: EventId) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.set.remove(&oldest);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_repeats_and_forgets_the_oldest() {
        let mut ids = RecentIds::new(2);
        assert!(ids.first_time(EventId(1)));
        assert!(!ids.first_time(EventId(1)));
        assert!(ids.first_time(EventId(2)));
        assert!(ids.first_time(EventId(3)));
        assert!(ids.first_time(EventId(1)), "1 was forgotten after 2 newer ids");
        assert!(!ids.first_time(EventId(3)));
    }
}
