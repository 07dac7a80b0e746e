//! `tally import --kinesis-stream NAME`: the lines of an import (`pipeline::import_lines`, the
//! same checks as the embedded import) packed into records by partition key, as the edge packs
//! live events (design decision 4), and put on a Kinesis stream: the way a backfill reaches the
//! AWS pipeline, where `tally ingest` counts the events like live ones.
//!
//! Each event's id comes from the line (its `id` field, or its timestamp and bytes), and the
//! import salts from a random key kept in the import ledger's file (`import_ledger.rs`), so
//! running the same file again makes the same events. The stream cannot refuse what it already
//! carries, so the ledger also keeps the ids put on each stream: a re-run, or a run after a
//! failed put, sends only the rest. Records of a failed call that did reach the stream go
//! again; `tally ingest` drops those repeated ids among the last million each shard worker saw.

use crate::aws::clients::{self, AwsSettings};
use crate::aws::import_ledger::Ledger;
use crate::aws::kinesis::api::{self, KinesisError};
use crate::pipeline::import_lines::{Batch, Input, Summary, import_key, open_input, progress_bar, read_lines};
use crate::registry::Registry;
use anyhow::Context;
use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;
use tally_model::codec;
use tally_model::event::LogEntry;
use tally_model::record::{MAX_RECORD_BYTES, Packer, Record, partition_key, sub_partition};

/// Attempts to put one batch of records (throttles and failed records are retried with backoff)
/// before the import stops with an error.
const MAX_PUT_ATTEMPTS: u32 = 12;

/// Settings of an import into a Kinesis stream.
#[derive(Debug, Clone)]
pub struct KinesisImport {
    /// How to reach Kinesis.
    pub aws: AwsSettings,
    /// The stream.
    pub stream: String,
    /// Sub-partitions per site: must equal the edge's `SUB_PARTITIONS` and `tally query`'s
    /// `--sub-partitions`.
    pub sub_partitions: u16,
    /// The data directory: its `registry.json` gives the sites, its `kinesis-imports.redb` the
    /// salts' key and the ids put before.
    pub data_dir: PathBuf,
}

/// What an import into Kinesis did: the lines' summary and how many records carried the events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    /// What happened to every line (`duplicates`: events this data directory put on the stream
    /// before, not sent again).
    pub summary: Summary,
    /// Kinesis records put.
    pub records: u64,
}

/// Imports `input` into the stream, with a progress bar on standard error if `progress`.
pub async fn import_to_stream(settings: KinesisImport, input: Input, progress: bool) -> anyhow::Result<Sent> {
    let (mut reader, size) = open_input(&input)?;
    let bar = progress_bar(progress, size);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let sent = import(&settings, &mut reader, &runtime, &mut |read, put| {
            bar.set_position(read);
            bar.set_message(format!("{put} events put"));
        });
        bar.finish_and_clear();
        sent
    })
    .await?
}

/// Reads every line of `reader` and puts its events on the stream (blocking: run it on a
/// blocking thread; `runtime` runs the Kinesis calls). `progress` hears the bytes read so far and
/// the events put after each batch.
pub fn import(
    settings: &KinesisImport,
    reader: &mut dyn BufRead,
    runtime: &tokio::runtime::Handle,
    progress: &mut dyn FnMut(u64, u64),
) -> anyhow::Result<Sent> {
    let registry = Registry::open(&settings.data_dir)?;
    let client = runtime.block_on(clients::kinesis(&settings.aws));
    runtime.block_on(api::list_shards(&client, &settings.stream)).map_err(|error| match error {
        KinesisError::NotFound(_) => {
            anyhow::anyhow!("there is no Kinesis stream {} in region {}", settings.stream, settings.aws.region)
        }
        other => anyhow::Error::new(other).context(format!("reaching Kinesis stream {}", settings.stream)),
    })?;
    let ledger = Ledger::open(&settings.data_dir, &settings.stream)?;
    let key = import_key(ledger.database())?;
    let snapshot = registry.snapshot();
    let is_site = |domain: &str| snapshot.site(domain).is_some();
    let (mut records, mut put) = (0u64, 0u64);
    let mut send = |batch: Batch| -> anyhow::Result<usize> {
        let ids: Vec<u128> = batch.ids.iter().map(|id| id.id).collect();
        let before = ledger.put_before(&ids)?;
        let mut this_batch = std::collections::HashSet::new();
        let mut packer = Packer::new(MAX_RECORD_BYTES);
        let mut skipped = 0;
        for (index, entry) in batch.entries.iter().enumerate() {
            // Put before, or a repeat of a line earlier in this batch.
            if before[index] || !this_batch.insert(ids[index]) {
                skipped += 1;
                continue;
            }
            let sub = match entry {
                LogEntry::Event(_) => sub_partition(batch.routes[index], settings.sub_partitions),
                LogEntry::Drop(_) | LogEntry::Drops(_) => 0,
            };
            packer.push_from(&partition_key(entry, sub), codec::encode(entry), index);
        }
        let (packed, origins): (Vec<Record>, Vec<Vec<usize>>) = packer.finish_with_origins().into_iter().unzip();
        let mut at = 0;
        for chunk in api::put_batches(&packed) {
            runtime.block_on(put_all(&client, &settings.stream, chunk)).with_context(|| {
                format!(
                    "putting events on Kinesis stream {}: {put} events of this run are on the stream and recorded as \
                     put; running the import again sends only the rest",
                    settings.stream
                )
            })?;
            let sent = &origins[at..at + chunk.len()];
            at += chunk.len();
            ledger.record(sent.iter().flatten().map(|&index| ids[index]))?;
            put += sent.iter().map(|o| o.len() as u64).sum::<u64>();
        }
        records += packed.len() as u64;
        Ok(skipped)
    };
    let summary = read_lines(reader, &key, &is_site, &mut send, progress)?;
    Ok(Sent { summary, records })
}

/// Puts one `PutRecords` batch, retrying throttles and the records that failed, with jittered
/// backoff.
async fn put_all(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    batch: &[tally_model::record::Record],
) -> anyhow::Result<()> {
    let mut pending = batch.to_vec();
    for attempt in 0..MAX_PUT_ATTEMPTS {
        if attempt > 0 {
            let ceiling = 50u64 << attempt.min(7);
            let jitter = getrandom::u64().unwrap_or(ceiling) % ceiling;
            tokio::time::sleep(Duration::from_millis(ceiling / 2 + jitter / 2)).await;
        }
        match api::put_records(client, stream, &pending).await {
            Ok(failed) if failed.is_empty() => return Ok(()),
            Ok(failed) => pending = failed.into_iter().map(|(index, _)| pending[index].clone()).collect(),
            Err(KinesisError::Throttled(_)) => {}
            Err(error) => return Err(error.into()),
        }
    }
    anyhow::bail!("{} records still refused after {MAX_PUT_ATTEMPTS} attempts (throttled?)", pending.len())
}
