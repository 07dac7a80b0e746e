//! The lease table against dynoxide: taking, renewing, checkpointing, releasing, and fencing a
//! holder whose lease was taken over.

use crate::stand_ins::{Dynoxide, settings};
use tally_core::aws::lease::{Lease, LeaseError, LeaseTable, plan_takes};

async fn table_with_shards(shards: &[&str]) -> LeaseTable {
    let dynamo = Dynoxide::start();
    let client = tally_core::aws::clients::dynamodb(&settings(None, Some(&dynamo.url))).await;
    let table = LeaseTable::new(client, "tally-leases");
    table.create_if_missing().await.unwrap();
    table.create_if_missing().await.unwrap();
    let rows: Vec<(String, Vec<String>)> = shards.iter().map(|s| ((*s).to_owned(), vec![])).collect();
    table.add_shards(&rows).await.unwrap();
    table
}

fn find<'a>(leases: &'a [Lease], shard: &str) -> &'a Lease {
    leases.iter().find(|l| l.shard_id == shard).unwrap()
}

#[tokio::test]
async fn adding_shards_twice_keeps_existing_leases() {
    let table = table_with_shards(&["s0", "s1"]).await;
    let leases = table.list().await.unwrap();
    let taken = table.take(find(&leases, "s0"), "a", 0, 10_000).await.unwrap();
    table.add_shards(&[("s0".into(), vec![]), ("s2".into(), vec!["s0".into()])]).await.unwrap();
    let leases = table.list().await.unwrap();
    assert_eq!(leases.len(), 3);
    assert_eq!(find(&leases, "s0"), &taken, "re-adding a shard must not reset its lease");
    assert_eq!(find(&leases, "s2").parents, vec!["s0".to_owned()]);
}

#[tokio::test]
async fn a_taken_over_holder_is_fenced_off() {
    let table = table_with_shards(&["s0"]).await;
    let seen = table.list().await.unwrap().remove(0);
    let a = table.take(&seen, "a", 1_000, 11_000).await.unwrap();
    assert_eq!((a.owner.as_deref(), a.epoch), (Some("a"), 1));
    let a = table.checkpoint(&a, "49590338271490256608559692538361571095921575989136588898").await.unwrap();
    // While a's lease is live, b cannot take it.
    let seen = table.list().await.unwrap().remove(0);
    assert!(matches!(table.take(&seen, "b", 5_000, 15_000).await, Err(LeaseError::Lost(_))));
    // a pauses past its expiry; b takes over and the epoch moves on.
    let b = table.take(&seen, "b", 12_000, 22_000).await.unwrap();
    assert_eq!((b.owner.as_deref(), b.epoch), (Some("b"), 2));
    assert_eq!(b.checkpoint, a.checkpoint, "the checkpoint travels with the lease");
    // a wakes up: every write it tries is refused.
    assert!(matches!(table.checkpoint(&a, "1").await, Err(LeaseError::Lost(_))));
    assert!(matches!(table.renew(&a, 30_000).await, Err(LeaseError::Lost(_))));
    assert!(matches!(table.release(&a).await, Err(LeaseError::Lost(_))));
    // b's writes go through, and b can hand the lease back.
    let b = table.renew(&b, 40_000).await.unwrap();
    table.release(&b).await.unwrap();
    let free = table.list().await.unwrap().remove(0);
    assert_eq!((free.owner, free.expires_ms, free.epoch), (None, 0, 2));
}

#[tokio::test]
async fn taking_from_a_stale_listing_fails() {
    let table = table_with_shards(&["s0"]).await;
    let seen = table.list().await.unwrap().remove(0);
    table.take(&seen, "a", 0, 1).await.unwrap();
    // b planned from the listing before a's take: its epoch is stale, even though a's lease expired.
    assert!(matches!(table.take(&seen, "b", 5, 100).await, Err(LeaseError::Lost(_))));
}

#[tokio::test]
async fn two_workers_balance_four_shards() {
    let table = table_with_shards(&["s0", "s1", "s2", "s3"]).await;
    let now = 1_000;
    let mut rounds = 0;
    loop {
        rounds += 1;
        let mut moved = false;
        for worker in ["a", "b"] {
            let leases = table.list().await.unwrap();
            let plan = plan_takes(&leases, worker, now);
            for shard in plan.take {
                moved |= table.take(find(&leases, &shard), worker, now, now + 10_000).await.is_ok();
            }
            if let Some(shard) = plan.steal {
                moved |= table.steal(find(&leases, &shard), worker, now + 10_000).await.is_ok();
            }
        }
        if !moved || rounds > 10 {
            break;
        }
    }
    let leases = table.list().await.unwrap();
    let count = |w: &str| leases.iter().filter(|l| l.owner.as_deref() == Some(w)).count();
    assert_eq!((count("a"), count("b")), (2, 2), "after {rounds} rounds: {leases:?}");
}
