//! Writes a flush's segment rows: one Parquet object per lineage and local day, named after the
//! flush, so that writing the flush again (a retry, a recovery, a former holder waking up)
//! writes the same objects.

use super::keys::{flush_key, lineage_prefix};
use super::{SegmentObjects, s3_error};
use crate::aws::dynamo::items::GENERATION;
use crate::aws::dynamo::{FlushRecord, StoreError};
use crate::columnar::{Origin, Segment, parquet_file};
use crate::pipeline::flush::{FastMap, Lineage};
use std::collections::BTreeSet;
use tally_model::breakdown::{Day, day_of};
use tally_model::segment::SegmentRows;
use tokio::task::JoinSet;

/// Objects written at once.
const CONCURRENCY: usize = 16;

/// One object to write: its lineage (site, sub-partition), local day, key and body.
type Encoded = (String, u16, Day, String, Vec<u8>);

/// What writing a flush's segments did: per (site, sub-partition, local day), the object's bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// The lineage days written, with each object's size.
    pub days: Vec<(String, u16, Day, usize)>,
}

/// Writes `segments` (a flush's rows per lineage), logged as `record`, from `region`.
pub async fn write_flush(
    objects: &SegmentObjects,
    region: &str,
    record: &FlushRecord,
    segments: FastMap<Lineage, SegmentRows>,
) -> Result<Written, StoreError> {
    if segments.is_empty() {
        return Ok(Written::default());
    }
    let (region, shard, seq, time_s) = (region.to_owned(), record.shard_id.clone(), record.seq, record.time_s);
    // Encoding is CPU work: off the async threads.
    let encoded = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Encoded>> {
        let mut out = Vec::new();
        for ((site, sub), rows) in &segments {
            let days: BTreeSet<Day> = rows.rows.keys().map(|id| day_of(id.bucket)).collect();
            for day in days {
                let key = flush_key(&lineage_prefix(site, day, &region, *sub), time_s, &shard, seq);
                let keep = |b| day_of(b) == day;
                if let Some(segment) =
                    Segment::from_rows(site, GENERATION, rows, keep, true, Origin::Object(key.clone()))
                {
                    out.push((site.clone(), *sub, day, key, parquet_file::encode(&segment)?));
                }
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| StoreError::Other(e.to_string()))?
    .map_err(|e| StoreError::Other(format!("encoding segments: {e:#}")))?;
    let mut written = Written::default();
    let mut running = JoinSet::new();
    for (site, sub, day, key, body) in encoded {
        if running.len() >= CONCURRENCY
            && let Some(joined) = running.join_next().await
        {
            written.days.push(joined.map_err(|e| StoreError::Other(e.to_string()))??);
        }
        let objects = objects.clone();
        running.spawn(async move {
            let bytes = body.len();
            let put = objects.client.put_object().bucket(&objects.bucket).key(&key).body(body.into()).send().await;
            put.map_err(|e| s3_error(&format!("writing {key}"), e))?;
            crate::telemetry::segment_put("flush", bytes);
            Ok::<_, StoreError>((site, sub, day, bytes))
        });
    }
    while let Some(joined) = running.join_next().await {
        written.days.push(joined.map_err(|e| StoreError::Other(e.to_string()))??);
    }
    written.days.sort();
    Ok(written)
}
