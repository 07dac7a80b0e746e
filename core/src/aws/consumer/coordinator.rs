//! The coordinator of one consumer process: every lease interval it registers new shards,
//! renews the leases it holds, takes its fair share of the rest (only shards whose parents are
//! finished), and runs one shard worker per held lease. On shutdown the workers flush and
//! checkpoint, and the leases are released for the other workers.

use super::shard_worker::{Outcome, ShardContext, run_shard};
use crate::aws::kinesis::api;
use crate::aws::lease::{Lease, LeaseError, plan_takes, readable};
use crate::telemetry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How the coordinator keeps its leases.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// This worker's id, unique among the consumer's processes.
    pub worker_id: String,
    /// How long a lease lasts without renewal.
    pub lease_duration: Duration,
}

struct Running {
    lease: Lease,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<Outcome, super::shard_worker::WorkerError>>,
}

/// Runs the consumer until `shutdown` turns true; then stops every shard worker after its last
/// flush and releases the leases.
pub async fn run_consumer(
    ctx: Arc<ShardContext>,
    settings: ConsumerSettings,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    ctx.leases.create_if_missing().await?;
    let mut running: HashMap<String, Running> = HashMap::new();
    while !*shutdown.borrow() {
        if let Err(error) = round(&ctx, &settings, &mut running).await {
            tracing::warn!(%error, "lease round failed; retrying next round");
        }
        tokio::select! {
            () = tokio::time::sleep(settings.lease_duration / 3) => {}
            _ = shutdown.changed() => {}
        }
    }
    tracing::info!(shards = running.len(), "stopping shard workers");
    for worker in running.values() {
        worker.stop.send_replace(true);
    }
    for (shard_id, worker) in running {
        let outcome = worker.task.await;
        tracing::info!(shard_id, ?outcome, "shard worker stopped");
        match outcome {
            Ok(Ok(Outcome::Lost)) => {}
            Ok(Ok(_)) => {
                // Re-read: the worker's commits changed the checkpoint but not owner or epoch.
                match ctx.leases.release(&worker.lease).await {
                    Ok(()) => telemetry::lease_change("released"),
                    Err(error) => tracing::warn!(shard_id, %error, "could not release lease; it will expire"),
                }
            }
            Ok(Err(error)) => tracing::warn!(shard_id, %error, "shard worker failed while stopping"),
            Err(error) => tracing::warn!(shard_id, %error, "shard worker panicked"),
        }
    }
    Ok(())
}

async fn round(
    ctx: &Arc<ShardContext>,
    settings: &ConsumerSettings,
    running: &mut HashMap<String, Running>,
) -> anyhow::Result<()> {
    let shards = api::list_shards(&ctx.kinesis, &ctx.stream).await?;
    let known: HashSet<String> = ctx.leases.list().await?.into_iter().map(|l| l.shard_id).collect();
    let rows: Vec<(String, Vec<String>)> = shards
        .iter()
        .filter(|s| !known.contains(&s.shard_id))
        .map(|s| (s.shard_id.clone(), s.parent_shard_id.iter().chain(&s.adjacent_parent_shard_id).cloned().collect()))
        .collect();
    ctx.leases.add_shards(&rows).await?;
    reap(running).await;
    let now = jiff::Timestamp::now().as_millisecond();
    let expires = now + i64::try_from(settings.lease_duration.as_millis()).unwrap_or(i64::MAX);
    renew(ctx, running, expires).await;
    let leases = ctx.leases.list().await?;
    let readable = readable(&leases);
    let plan = plan_takes(&readable, &settings.worker_id, now);
    let by_id: HashMap<&str, &Lease> = readable.iter().map(|l| (l.shard_id.as_str(), l)).collect();
    // Leases this worker id holds but does not run: a restarted process, or a failed worker.
    let orphans: Vec<String> = readable
        .iter()
        .filter(|l| l.live_owner(now) == Some(settings.worker_id.as_str()) && !running.contains_key(&l.shard_id))
        .map(|l| l.shard_id.clone())
        .collect();
    let takes = orphans.iter().chain(&plan.take).map(|s| (s, false)).chain(plan.steal.iter().map(|s| (s, true)));
    for (shard_id, steal) in takes {
        let Some(seen) = by_id.get(shard_id.as_str()) else { continue };
        let taken = if steal {
            ctx.leases.steal(seen, &settings.worker_id, expires).await
        } else {
            ctx.leases.take(seen, &settings.worker_id, now, expires).await
        };
        match taken {
            Ok(lease) => {
                tracing::info!(shard_id, epoch = lease.epoch, steal, "lease taken");
                telemetry::lease_change(if steal { "stolen" } else { "taken" });
                start(ctx, running, lease);
            }
            Err(LeaseError::Lost(_)) => tracing::debug!(shard_id, "lease went to another worker first"),
            Err(error) => tracing::warn!(shard_id, %error, "could not take lease"),
        }
    }
    Ok(())
}

fn start(ctx: &Arc<ShardContext>, running: &mut HashMap<String, Running>, lease: Lease) {
    if let Some(old) = running.remove(&lease.shard_id) {
        old.stop.send_replace(true);
    }
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run_shard(ctx.clone(), lease.clone(), stopped));
    running.insert(lease.shard_id.clone(), Running { lease, stop, task });
}

/// Forgets workers that ended; a failed worker's lease is left to expire or be retaken.
async fn reap(running: &mut HashMap<String, Running>) {
    let ended: Vec<String> = running.iter().filter(|(_, w)| w.task.is_finished()).map(|(s, _)| s.clone()).collect();
    for shard_id in ended {
        let Some(worker) = running.remove(&shard_id) else { continue };
        match worker.task.await {
            Ok(Ok(outcome)) => tracing::info!(shard_id, ?outcome, "shard worker ended"),
            Ok(Err(error)) => tracing::warn!(shard_id, %error, "shard worker failed; the shard is retaken next round"),
            Err(error) => tracing::error!(shard_id, %error, "shard worker panicked"),
        }
    }
}

async fn renew(ctx: &Arc<ShardContext>, running: &mut HashMap<String, Running>, expires: i64) {
    let mut lost = Vec::new();
    for (shard_id, worker) in running.iter_mut() {
        match ctx.leases.renew(&worker.lease, expires).await {
            Ok(lease) => worker.lease = lease,
            Err(LeaseError::Lost(_)) => lost.push(shard_id.clone()),
            Err(error) => tracing::warn!(shard_id, %error, "could not renew lease"),
        }
    }
    for shard_id in lost {
        if let Some(worker) = running.remove(&shard_id) {
            tracing::info!(shard_id, "lease lost to another worker; stopping its shard worker");
            telemetry::lease_change("lost");
            worker.stop.send_replace(true);
        }
    }
}
