//! Folds a lineage's segment objects of one local day into one, alongside the fold of the day's
//! rollup deltas (`dynamo::folds`), by the same writer and up to the same flush time `upto`, so a
//! day is read as one object per lineage (plus what was written since) whatever the number of
//! flushes.
//!
//! The new fold is the newest fold before it plus the flush objects written after that fold and
//! up to `upto`; it is written before anything it replaces is deleted. Readers take the newest
//! fold and the flush objects after it, so two folders (a paused former holder waking up) never
//! make a row count twice: each fold holds exactly the flushes up to its own `upto`. A reader
//! that finds an object deleted after it listed the day lists again.

use super::keys::{Kind, fold_key, lineage_prefix, parse};
use super::{SegmentObjects, get_object, list_keys, s3_error};
use crate::aws::dynamo::StoreError;
use crate::aws::dynamo::items::GENERATION;
use crate::columnar::{Origin, Segment, parquet_file};
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use tally_model::breakdown::Day;
use tally_model::rollup::Bucket;
use tally_model::segment::SegmentRows;

/// What one fold did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Folded {
    /// Flush objects folded in.
    pub flushes: usize,
    /// Objects deleted (folded flushes and older folds).
    pub deleted: usize,
}

/// Folds the segment objects of (`site`, `sub`) in `region` on `day` written up to `upto` (s).
pub async fn fold(
    objects: &SegmentObjects,
    (site, region, sub): (&str, &str, u16),
    day: Day,
    upto: i64,
) -> Result<Folded, StoreError> {
    let lineage = lineage_prefix(site, day, region, sub);
    let keys = list_keys(objects, &lineage).await?;
    let parsed: Vec<(&String, Kind)> = keys.iter().filter_map(|k| parse(k).map(|(_, kind)| (k, kind))).collect();
    let newest =
        parsed.iter().filter_map(|(k, kind)| if let Kind::Fold(u) = kind { Some((*u, *k)) } else { None }).max();
    let since = newest.map(|(u, _)| u);
    if since.is_some_and(|s| s >= upto) {
        return Ok(Folded::default());
    }
    let taken: Vec<&String> = parsed
        .iter()
        .filter(|(_, kind)| matches!(kind, Kind::Flush(t) if since.is_none_or(|s| *t > s) && *t <= upto))
        .map(|(k, _)| *k)
        .collect();
    if taken.is_empty() {
        return Ok(Folded::default());
    }
    let mut bodies = Vec::with_capacity(taken.len() + 1);
    for key in newest.map(|(_, k)| k).into_iter().chain(taken.iter().copied()) {
        let body = get_object(objects, key).await?;
        // Gone: another folder got here first (its fold holds it); this fold is not needed.
        let Some(body) = body else { return Ok(Folded::default()) };
        bodies.push((key.clone(), body));
    }
    let key = fold_key(&lineage, upto);
    let (site_owned, fold_name) = (site.to_owned(), key.clone());
    let body = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u8>> {
        let mut merged = SegmentRows::default();
        for (name, body) in bodies {
            let columns = parquet_file::decode(body, &name)?;
            let segment = Segment::loaded(&site_owned, GENERATION, columns, Origin::Object(name));
            segment.add_rows_to(&mut merged, Bucket::MIN, Bucket::MAX)?;
        }
        let folded = Segment::from_rows(&site_owned, GENERATION, &merged, |_| true, true, Origin::Object(fold_name))
            .ok_or_else(|| anyhow::anyhow!("the folded objects hold no rows"))?;
        parquet_file::encode(&folded)
    })
    .await
    .map_err(|e| StoreError::Other(e.to_string()))?
    .map_err(|e| StoreError::Other(format!("folding {lineage}: {e:#}")))?;
    let bytes = body.len();
    let put = objects.client.put_object().bucket(&objects.bucket).key(&key).body(body.into()).send().await;
    put.map_err(|e| s3_error(&format!("writing {key}"), e))?;
    crate::telemetry::segment_put("fold", bytes);
    // What the new fold replaces: every flush object up to `upto` (also any a paused former
    // holder wrote again after an earlier fold) and the older folds.
    let stale: Vec<ObjectIdentifier> = parsed
        .iter()
        .filter(|(_, kind)| match kind {
            Kind::Flush(t) => *t <= upto,
            Kind::Fold(u) => *u < upto,
        })
        .filter_map(|(k, _)| ObjectIdentifier::builder().key(k.as_str()).build().ok())
        .collect();
    let mut deleted = 0;
    for chunk in stale.chunks(1000) {
        let delete = Delete::builder()
            .set_objects(Some(chunk.to_vec()))
            .quiet(true)
            .build()
            .map_err(|e| StoreError::Other(e.to_string()))?;
        let sent = objects.client.delete_objects().bucket(&objects.bucket).delete(delete).send().await;
        sent.map_err(|e| s3_error(&format!("deleting folded objects of {lineage}"), e))?;
        deleted += chunk.len();
    }
    Ok(Folded { flushes: taken.len(), deleted })
}
