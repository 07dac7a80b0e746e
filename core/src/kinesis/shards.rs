//! The resharding rule: a child shard is read only after its parents are read to their end, so
//! that the records of one partition key are processed in order across a split or a merge.

use super::api::ShardInfo;
use std::collections::HashSet;

/// The shards to read now: those not yet finished whose parents (parent and adjacent parent) are
/// finished or no longer listed (trimmed away after the retention period).
pub fn readable_shards<'a>(shards: &'a [ShardInfo], finished: &HashSet<String>) -> Vec<&'a ShardInfo> {
    let listed: HashSet<&str> = shards.iter().map(|s| s.shard_id.as_str()).collect();
    let parent_done =
        |parent: &Option<String>| parent.as_deref().is_none_or(|p| finished.contains(p) || !listed.contains(p));
    shards
        .iter()
        .filter(|s| !finished.contains(&s.shard_id))
        .filter(|s| parent_done(&s.parent_shard_id) && parent_done(&s.adjacent_parent_shard_id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parent: Option<&str>, adjacent: Option<&str>) -> ShardInfo {
        ShardInfo {
            shard_id: id.into(),
            parent_shard_id: parent.map(Into::into),
            adjacent_parent_shard_id: adjacent.map(Into::into),
            starting_hash_key: "0".into(),
            ending_hash_key: "1".into(),
            starting_sequence_number: "1".into(),
            ending_sequence_number: None,
        }
    }

    fn ids(shards: &[&ShardInfo]) -> Vec<String> {
        shards.iter().map(|s| s.shard_id.clone()).collect()
    }

    fn set(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn split_children_wait_for_their_parent() {
        let shards = [shard("p", None, None), shard("a", Some("p"), None), shard("b", Some("p"), None)];
        assert_eq!(ids(&readable_shards(&shards, &set(&[]))), ["p"]);
        assert_eq!(ids(&readable_shards(&shards, &set(&["p"]))), ["a", "b"]);
        assert_eq!(ids(&readable_shards(&shards, &set(&["p", "a"]))), ["b"]);
    }

    #[test]
    fn merged_child_waits_for_both_parents() {
        let shards = [shard("p", None, None), shard("q", None, None), shard("c", Some("p"), Some("q"))];
        assert_eq!(ids(&readable_shards(&shards, &set(&[]))), ["p", "q"]);
        assert_eq!(ids(&readable_shards(&shards, &set(&["p"]))), ["q"]);
        assert_eq!(ids(&readable_shards(&shards, &set(&["q"]))), ["p"]);
        assert_eq!(ids(&readable_shards(&shards, &set(&["p", "q"]))), ["c"]);
    }

    #[test]
    fn trimmed_parents_do_not_block() {
        let shards = [shard("a", Some("gone"), None), shard("c", Some("a"), Some("gone-too"))];
        assert_eq!(ids(&readable_shards(&shards, &set(&[]))), ["a"]);
        assert_eq!(ids(&readable_shards(&shards, &set(&["a"]))), ["c"]);
        assert!(readable_shards(&shards, &set(&["a", "c"])).is_empty());
    }
}
