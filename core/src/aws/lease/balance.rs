//! Which leases a worker should take this round: free or expired ones first, then, if it still
//! has fewer than its fair share, one lease from the most loaded worker.

use super::table::Lease;
use std::collections::{BTreeMap, HashSet};

/// The resharding rule: the open leases whose shards may be read now, those whose parents
/// (one after a split, two after a merge) are finished or gone from the table (trimmed after the
/// retention period). Reading a child only after its parents keeps each partition key's records
/// in order across a split or a merge.
pub fn readable(leases: &[Lease]) -> Vec<Lease> {
    let open: HashSet<&str> = leases.iter().filter(|l| !l.is_finished()).map(|l| l.shard_id.as_str()).collect();
    leases
        .iter()
        .filter(|l| !l.is_finished() && l.parents.iter().all(|p| !open.contains(p.as_str())))
        .cloned()
        .collect()
}

/// What a worker should try this round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Free or expired leases to take.
    pub take: Vec<String>,
    /// A live lease of the most loaded worker to steal.
    pub steal: Option<String>,
}

/// What `worker` should try to take at `now_ms`, given every lease. Finished shards
/// (checkpoint at SHARD_END) are not counted or taken. A worker's fair share is the number of
/// open shards divided by the live workers (those holding an unexpired lease, plus itself),
/// rounded up. At most one lease is stolen per round, as the KCL does, so that two workers
/// converge instead of trading leases back and forth.
pub fn plan_takes(leases: &[Lease], worker: &str, now_ms: i64) -> Plan {
    let open: Vec<&Lease> = leases.iter().filter(|l| !l.is_finished()).collect();
    let mut held: BTreeMap<&str, Vec<&Lease>> = BTreeMap::new();
    for lease in &open {
        if let Some(owner) = lease.live_owner(now_ms) {
            held.entry(owner).or_default().push(lease);
        }
    }
    let workers = held.len() + usize::from(!held.contains_key(worker));
    let target = open.len().div_ceil(workers.max(1));
    let mine = held.get(worker).map_or(0, Vec::len);
    if mine >= target {
        return Plan::default();
    }
    let take: Vec<String> = open
        .iter()
        .filter(|l| l.live_owner(now_ms).is_none())
        .take(target - mine)
        .map(|l| l.shard_id.clone())
        .collect();
    if !take.is_empty() {
        return Plan { take, steal: None };
    }
    let busiest = held.iter().filter(|(owner, _)| **owner != worker).max_by_key(|(_, leases)| leases.len());
    let steal = busiest.filter(|(_, leases)| leases.len() > target).and_then(|(_, leases)| leases.first());
    Plan { take, steal: steal.map(|l| l.shard_id.clone()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(shard: &str, owner: Option<&str>, expires_ms: i64) -> Lease {
        Lease {
            shard_id: shard.into(),
            owner: owner.map(str::to_owned),
            epoch: 1,
            expires_ms,
            checkpoint: Lease::TRIM_HORIZON.into(),
            parents: vec![],
            flush_seq: 0,
        }
    }

    #[test]
    fn a_lone_worker_takes_every_free_lease() {
        let leases: Vec<Lease> = (0..4).map(|i| lease(&format!("s{i}"), None, 0)).collect();
        assert_eq!(plan_takes(&leases, "a", 100).take.len(), 4);
    }

    #[test]
    fn a_second_worker_takes_expired_leases_then_steals_one_at_a_time() {
        let mut leases: Vec<Lease> = (0..4).map(|i| lease(&format!("s{i}"), Some("a"), 1_000)).collect();
        let steal = |shard: &str| Plan { take: vec![], steal: Some(shard.to_owned()) };
        assert_eq!(plan_takes(&leases, "b", 100), steal("s0"), "steals one of a's four");
        leases[0].owner = Some("b".into());
        assert_eq!(plan_takes(&leases, "b", 100), steal("s1"));
        leases[1].owner = Some("b".into());
        assert_eq!(plan_takes(&leases, "b", 100), Plan::default(), "2 and 2 is balanced");
        assert_eq!(plan_takes(&leases, "a", 100), Plan::default());
        // a stops renewing: its leases expire while b renews, and b takes them without stealing.
        leases[0].expires_ms = 5_000;
        leases[1].expires_ms = 5_000;
        assert_eq!(plan_takes(&leases, "b", 2_000), Plan { take: vec!["s2".into(), "s3".into()], steal: None });
    }

    fn child(shard: &str, parents: &[&str]) -> Lease {
        Lease { parents: parents.iter().map(|p| (*p).to_owned()).collect(), ..lease(shard, None, 0) }
    }

    fn readable_ids(leases: &[Lease], finished: &[&str]) -> Vec<String> {
        let mut leases = leases.to_vec();
        for l in &mut leases {
            if finished.contains(&l.shard_id.as_str()) {
                l.checkpoint = Lease::SHARD_END.into();
            }
        }
        readable(&leases).into_iter().map(|l| l.shard_id).collect()
    }

    #[test]
    fn split_children_wait_for_their_parent() {
        let leases = [lease("p", None, 0), child("a", &["p"]), child("b", &["p"])];
        assert_eq!(readable_ids(&leases, &[]), ["p"]);
        assert_eq!(readable_ids(&leases, &["p"]), ["a", "b"]);
        assert_eq!(readable_ids(&leases, &["p", "a"]), ["b"]);
    }

    #[test]
    fn merged_child_waits_for_both_parents() {
        let leases = [lease("p", None, 0), lease("q", None, 0), child("c", &["p", "q"])];
        assert_eq!(readable_ids(&leases, &[]), ["p", "q"]);
        assert_eq!(readable_ids(&leases, &["p"]), ["q"]);
        assert_eq!(readable_ids(&leases, &["p", "q"]), ["c"]);
    }

    #[test]
    fn trimmed_parents_do_not_block() {
        let leases = [child("a", &["gone"]), child("c", &["a", "gone-too"])];
        assert_eq!(readable_ids(&leases, &[]), ["a"]);
        assert_eq!(readable_ids(&leases, &["a"]), ["c"]);
        assert!(readable_ids(&leases, &["a", "c"]).is_empty());
    }

    #[test]
    fn finished_shards_are_ignored() {
        let mut done = lease("s0", None, 0);
        done.checkpoint = Lease::SHARD_END.into();
        assert_eq!(plan_takes(&[done, lease("s1", None, 0)], "a", 1).take, vec!["s1".to_owned()]);
    }
}
