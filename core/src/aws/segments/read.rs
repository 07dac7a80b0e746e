//! Reads segment objects for a query: per local day of the range, one listing of the day's
//! objects (every lineage), the live ones of it (`keys::live`), each decoded once and kept in a
//! cache bounded in bytes (objects never change: a key names one content for good). A day's
//! listing is kept for [`LISTING_TTL`], so the questions of one dashboard load share it (answers
//! may be as old as that, like `tally query`'s answer cache).

use super::keys::{day_of_prefix, day_prefix, live, site_prefix};
use super::{SegmentObjects, get_object, list_keys, s3_error};
use crate::aws::dynamo::StoreError;
use crate::aws::dynamo::items::GENERATION;
use crate::columnar::{COUNTERS, Column, Origin, Segment, parquet_file};
use std::sync::Arc;
use tally_model::breakdown::Day;
use tally_model::rollup::Bucket;
use tally_model::segment::DIMENSIONS;

/// Days listed and loaded at once.
const DAY_CONCURRENCY: usize = 16;
/// Listings of a day tried before a read fails (an object can be folded away between a listing
/// and its read, at most once per fold).
const LIST_ATTEMPTS: usize = 4;

/// How long a day's listing is used again.
pub const LISTING_TTL: std::time::Duration = std::time::Duration::from_secs(5);
/// Most day listings kept.
const MAX_LISTINGS: u64 = 100_000;

/// A segment with the buckets a query reads of it.
pub type Slice = (Arc<Segment>, Bucket, Bucket);

/// Reads segment objects, with a cache of decoded ones.
#[derive(Clone)]
pub struct SegmentReader {
    objects: SegmentObjects,
    cache: moka::future::Cache<String, Arc<Segment>>,
    /// The live keys of a day prefix, as listed at most [`LISTING_TTL`] ago.
    listings: moka::future::Cache<String, Arc<Vec<String>>>,
}

/// About how many bytes a decoded segment holds in memory.
fn weight(segment: &Segment) -> u32 {
    let text: usize = (0..DIMENSIONS)
        .filter_map(|i| segment.dimension(i).ok())
        .map(|(values, _)| values.iter().map(|v| v.len() + 24).sum::<usize>())
        .sum();
    let per_row = 3 * 8 + DIMENSIONS * 4 + COUNTERS.len() * 8 + 16;
    u32::try_from(text + segment.rows * per_row).unwrap_or(u32::MAX)
}

impl SegmentReader {
    /// A reader whose cache holds at most `cache_bytes` of decoded segments.
    pub fn new(objects: SegmentObjects, cache_bytes: u64) -> SegmentReader {
        let cache = moka::future::Cache::builder()
            .max_capacity(cache_bytes)
            .weigher(|_: &String, segment: &Arc<Segment>| weight(segment))
            .build();
        let listings = moka::future::Cache::builder().max_capacity(MAX_LISTINGS).time_to_live(LISTING_TTL).build();
        SegmentReader { objects, cache, listings }
    }

    /// The segments of `site` holding buckets `buckets`, with the part of each a query reads.
    pub async fn segments_for(&self, site: &str, buckets: std::ops::Range<Bucket>) -> Result<Vec<Slice>, StoreError> {
        if buckets.is_empty() {
            return Ok(Vec::new());
        }
        let (first, last) = (buckets.start, buckets.end - 1);
        let mut running = tokio::task::JoinSet::new();
        let mut out = Vec::new();
        for day in first.div_euclid(24)..=last.div_euclid(24) {
            if running.len() >= DAY_CONCURRENCY
                && let Some(joined) = running.join_next().await
            {
                out.extend(joined.map_err(|e| StoreError::Other(e.to_string()))??);
            }
            let (reader, site) = (self.clone(), site.to_owned());
            let (lo, hi) = (first.max(day * 24), last.min(day * 24 + 23));
            running.spawn(async move {
                let segments = reader.day(&site, day).await?;
                Ok::<_, StoreError>(segments.into_iter().map(|s| (s, lo, hi)).collect::<Vec<_>>())
            });
        }
        while let Some(joined) = running.join_next().await {
            out.extend(joined.map_err(|e| StoreError::Other(e.to_string()))??);
        }
        Ok(out)
    }

    /// The live segments of one local day of `site`, every lineage.
    async fn day(&self, site: &str, day: Day) -> Result<Vec<Arc<Segment>>, StoreError> {
        let prefix = day_prefix(site, day);
        'listing: for _ in 0..LIST_ATTEMPTS {
            let listed = self.listings.try_get_with(prefix.clone(), async {
                Ok::<_, StoreError>(Arc::new(live(&list_keys(&self.objects, &prefix).await?)))
            });
            let keys = listed.await.map_err(|e| StoreError::Other(e.to_string()))?;
            let mut segments = Vec::with_capacity(keys.len());
            for key in keys.iter() {
                match self.load(site, key).await? {
                    Some(segment) => segments.push(segment),
                    None => {
                        // Folded away since the listing: list the day again.
                        self.listings.invalidate(&prefix).await;
                        continue 'listing;
                    }
                }
            }
            return Ok(segments);
        }
        Err(StoreError::Other(format!("{prefix}: its objects kept changing while read; try again")))
    }

    /// Object `key`, decoded (from the cache if it was read before); `None` if it is gone.
    async fn load(&self, site: &str, key: &str) -> Result<Option<Arc<Segment>>, StoreError> {
        if let Some(segment) = self.cache.get(key).await {
            return Ok(Some(segment));
        }
        let Some(body) = get_object(&self.objects, key).await? else { return Ok(None) };
        let (site, name) = (site.to_owned(), key.to_owned());
        let segment = tokio::task::spawn_blocking(move || -> anyhow::Result<Segment> {
            let columns: Vec<Column> = parquet_file::decode(body, &name)?;
            Ok(Segment::loaded(&site, GENERATION, columns, Origin::Object(name)))
        })
        .await
        .map_err(|e| StoreError::Other(e.to_string()))?
        .map_err(|e| StoreError::Other(format!("decoding {key}: {e:#}")))?;
        let segment = Arc::new(segment);
        self.cache.insert(key.to_owned(), segment.clone()).await;
        Ok(Some(segment))
    }

    /// The first local day `site` has segment objects on, if any.
    pub async fn first_day(&self, site: &str) -> Result<Option<Day>, StoreError> {
        let prefix = site_prefix(site);
        let listed = self
            .objects
            .client
            .list_objects_v2()
            .bucket(&self.objects.bucket)
            .prefix(&prefix)
            .delimiter("/")
            .max_keys(1)
            .send()
            .await
            .map_err(|e| s3_error(&format!("listing {prefix}"), e))?;
        Ok(listed.common_prefixes().first().and_then(|p| p.prefix()).and_then(day_of_prefix))
    }
}
