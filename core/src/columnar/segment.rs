//! One segment: an immutable, columnar, dictionary-encoded set of segment rows of one site and
//! generation, either in memory (a flush not yet persisted, or an S3 object read whole) or a
//! Parquet file whose columns load on first use and stay loaded.

use super::parquet_file;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::OnceLock;
use tally_model::rollup::{Bucket, Counters};
use tally_model::segment::{DIMENSIONS, EngagementSums, RowId, RowSums, SegmentRows};

/// The counters a row carries, in column order.
pub const COUNTERS: [&str; 6] = Counters::NAMES;
/// Columns of a segment: bucket, visitor, visit, the dimensions, the counters, the revenue, the
/// engagement sums, the second.
pub const COLUMNS: usize = 3 + DIMENSIONS + COUNTERS.len() + 1 + ENGAGEMENT_COLUMNS + 1;
/// The column of revenue in micro-units (of the row's currency column).
pub const REVENUE: usize = 3 + DIMENSIONS + COUNTERS.len();
/// The columns of engagement sums, after the revenue: engagement events, engaged milliseconds,
/// greatest scroll depth (-1: none). Segments written before them read as rows without any.
pub const ENGAGEMENT_COLUMNS: usize = 3;
/// The column of engagement events (the first engagement column).
pub const ENGAGEMENTS: usize = REVENUE + 1;
/// The column of engaged milliseconds.
pub const ENGAGED_MS: usize = REVENUE + 2;
/// The column of the greatest scroll depth.
pub const MAX_SCROLL_DEPTH: usize = REVENUE + 3;

/// The column of each row's second (`RowId::second`, Unix seconds), the last.
pub const SECOND: usize = MAX_SCROLL_DEPTH + 1;
/// The second of rows in segments written before the column existed: unknown, so funnels refuse
/// them.
pub const UNKNOWN_SECOND: i64 = i64::MIN;

/// The value of column `i` in a row that has none: a segment written before the column existed.
pub fn absent_value(i: usize) -> i64 {
    match i {
        MAX_SCROLL_DEPTH => EngagementSums::NONE.max_scroll_depth,
        SECOND => UNKNOWN_SECOND,
        _ => 0,
    }
}
/// The column of local-hour buckets.
pub const BUCKET: usize = 0;
/// The column of visitor ids.
pub const VISITOR: usize = 1;
/// The column of visit ids (`tally_model::segment::visit_id`).
pub const VISIT: usize = 2;

/// The column of dimension `i` (its index in `Dimension::CELL`, or `tally_model::segment::PROPS`).
pub const fn dimension_column(i: usize) -> usize {
    3 + i
}

/// The column of counter `i` (its index in [`COUNTERS`]).
pub const fn counter_column(i: usize) -> usize {
    3 + DIMENSIONS + i
}

/// One column's values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Column {
    /// Local-hour buckets.
    Buckets(Vec<i32>),
    /// Visitor ids, or visit ids.
    Visitors(Vec<u64>),
    /// A dimension: its distinct values and each row's code into them.
    Dimension {
        /// Values by code.
        values: Vec<String>,
        /// One code per row.
        codes: Vec<u32>,
    },
    /// A counter.
    Counter(Vec<i64>),
    /// Amounts in micro-units (a Parquet decimal with six places).
    Money(Vec<i128>),
}

impl Column {
    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows in the column.
    pub fn len(&self) -> usize {
        match self {
            Column::Buckets(v) => v.len(),
            Column::Visitors(v) => v.len(),
            Column::Dimension { codes, .. } => codes.len(),
            Column::Counter(v) => v.len(),
            Column::Money(v) => v.len(),
        }
    }
}

/// Where a segment's rows live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// In memory, and in the store's pending table under this sequence number.
    Pending(u64),
    /// In a Parquet file registered under (local day, sequence number).
    File {
        /// The local day the file holds.
        day: i64,
        /// Its sequence number.
        seq: u64,
        /// Its path.
        path: PathBuf,
    },
    /// An S3 object of the DynamoDB store, read whole (`aws/segments/`).
    Object(String),
}

/// An immutable segment.
#[derive(Debug)]
pub struct Segment {
    /// The site.
    pub site: String,
    /// The data generation its rows belong to.
    pub generation: u32,
    /// The first and last bucket it may hold.
    pub buckets: (Bucket, Bucket),
    /// Its rows.
    pub rows: usize,
    /// Where it lives.
    pub origin: Origin,
    columns: [OnceLock<Column>; COLUMNS],
}

/// A pending segment as the store's pending table keeps it.
#[derive(Debug, Deserialize)]
struct PendingBlob {
    site: String,
    generation: u32,
    /// Every column, in column order.
    columns: Vec<Column>,
}

/// [`PendingBlob`] borrowed from a segment, for writing (serialised alike).
#[derive(Serialize)]
struct PendingBlobRef<'a> {
    site: &'a str,
    generation: u32,
    columns: Vec<&'a Column>,
}

impl Segment {
    /// A segment in memory from `rows` whose bucket passes `keep`, or `None` if none does.
    /// With `sorted`, rows are ordered by (visitor, bucket, visit, codes), which Parquet compresses
    /// best.
    pub fn from_rows(
        site: &str,
        generation: u32,
        rows: &SegmentRows,
        keep: impl Fn(Bucket) -> bool,
        sorted: bool,
        origin: Origin,
    ) -> Option<Segment> {
        let mut picked: Vec<(&RowId, &RowSums)> = rows.rows.iter().filter(|(id, _)| keep(id.bucket)).collect();
        if picked.is_empty() {
            return None;
        }
        if sorted {
            picked.sort_unstable_by_key(|(id, _)| (id.visitor, id.bucket, id.visit, id.second, id.codes, id.depth));
        }
        let mut columns: Vec<Column> = Vec::with_capacity(COLUMNS);
        columns
            .push(Column::Buckets(picked.iter().map(|(id, _)| i32::try_from(id.bucket).unwrap_or(i32::MAX)).collect()));
        columns.push(Column::Visitors(picked.iter().map(|(id, _)| id.visitor).collect()));
        columns.push(Column::Visitors(picked.iter().map(|(id, _)| id.visit).collect()));
        for (i, dictionary) in rows.dictionaries.iter().enumerate() {
            let codes = picked.iter().map(|(id, _)| id.codes[i]).collect();
            columns.push(Column::Dimension { values: dictionary.values.clone(), codes });
        }
        let values: Vec<[i64; COUNTERS.len()]> = picked.iter().map(|(_, s)| s.counters.to_array()).collect();
        for i in 0..COUNTERS.len() {
            columns.push(Column::Counter(values.iter().map(|v| v[i]).collect()));
        }
        columns.push(Column::Money(picked.iter().map(|(_, s)| s.revenue_micros).collect()));
        columns.push(Column::Counter(picked.iter().map(|(_, s)| s.engagement.events).collect()));
        columns.push(Column::Counter(picked.iter().map(|(_, s)| s.engagement.engaged_ms).collect()));
        columns.push(Column::Counter(picked.iter().map(|(_, s)| s.engagement.max_scroll_depth).collect()));
        columns.push(Column::Counter(picked.iter().map(|(id, _)| id.second).collect()));
        Some(Segment::loaded(site, generation, columns, origin))
    }

    /// A segment whose columns are all at hand, in column order (those written before the
    /// engagement columns or the second existed lack them: they are filled in); its bucket range
    /// is that of its bucket column.
    pub fn loaded(site: &str, generation: u32, mut columns: Vec<Column>, origin: Origin) -> Segment {
        let rows = columns.first().map_or(0, Column::len);
        for i in columns.len()..COLUMNS {
            columns.push(Column::Counter(vec![absent_value(i); rows]));
        }
        let buckets = match columns.get(BUCKET) {
            Some(Column::Buckets(b)) => b
                .iter()
                .fold((Bucket::MAX, Bucket::MIN), |(lo, hi), b| (lo.min(Bucket::from(*b)), hi.max(Bucket::from(*b)))),
            _ => (Bucket::MAX, Bucket::MIN),
        };
        let cells: [OnceLock<Column>; COLUMNS] = std::array::from_fn(|_| OnceLock::new());
        for (cell, column) in cells.iter().zip(columns) {
            let _ = cell.set(column);
        }
        Segment { site: site.to_owned(), generation, buckets, rows, origin, columns: cells }
    }

    /// A persisted segment whose columns load on first use.
    pub fn on_disk(site: &str, generation: u32, day: i64, seq: u64, rows: usize, path: PathBuf) -> Segment {
        Segment {
            site: site.to_owned(),
            generation,
            buckets: (day * 24, day * 24 + 23),
            rows,
            origin: Origin::File { day, seq, path },
            columns: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Column `i`, loaded from the file on first use.
    pub fn column(&self, i: usize) -> anyhow::Result<&Column> {
        if let Some(column) = self.columns[i].get() {
            return Ok(column);
        }
        let Origin::File { path, .. } = &self.origin else {
            anyhow::bail!("a segment held in memory lacks column {i}");
        };
        let column = parquet_file::read_column(path, i)?;
        anyhow::ensure!(
            column.len() == self.rows,
            "{}: column {i} has {} rows, not {}",
            path.display(),
            column.len(),
            self.rows
        );
        let _ = self.columns[i].set(column);
        self.columns[i].get().ok_or_else(|| anyhow::anyhow!("column {i} vanished"))
    }

    /// Every column (loading what is not loaded yet).
    pub fn all_columns(&self) -> anyhow::Result<Vec<&Column>> {
        (0..COLUMNS).map(|i| self.column(i)).collect()
    }

    /// The bucket of each row.
    pub fn buckets(&self) -> anyhow::Result<&[i32]> {
        match self.column(BUCKET)? {
            Column::Buckets(v) => Ok(v),
            _ => anyhow::bail!("the bucket column has the wrong type"),
        }
    }

    /// The visitor id of each row.
    pub fn visitors(&self) -> anyhow::Result<&[u64]> {
        match self.column(VISITOR)? {
            Column::Visitors(v) => Ok(v),
            _ => anyhow::bail!("the visitor column has the wrong type"),
        }
    }

    /// The visit id of each row.
    pub fn visits(&self) -> anyhow::Result<&[u64]> {
        match self.column(VISIT)? {
            Column::Visitors(v) => Ok(v),
            _ => anyhow::bail!("the visit column has the wrong type"),
        }
    }

    /// Dimension `i` (its index in `Dimension::CELL`, or `tally_model::segment::PROPS`): its values
    /// and each row's code.
    pub fn dimension(&self, i: usize) -> anyhow::Result<(&[String], &[u32])> {
        match self.column(dimension_column(i))? {
            Column::Dimension { values, codes } => Ok((values, codes)),
            _ => anyhow::bail!("dimension column {i} has the wrong type"),
        }
    }

    /// Counter `i` (its index in [`COUNTERS`]) of each row.
    pub fn counter(&self, i: usize) -> anyhow::Result<&[i64]> {
        match self.column(counter_column(i))? {
            Column::Counter(v) => Ok(v),
            _ => anyhow::bail!("counter column {i} has the wrong type"),
        }
    }

    /// The revenue of each row, in micro-units of its currency (`tally_model::segment::CURRENCY`).
    pub fn revenue(&self) -> anyhow::Result<&[i128]> {
        match self.column(REVENUE)? {
            Column::Money(v) => Ok(v),
            _ => anyhow::bail!("the revenue column has the wrong type"),
        }
    }

    /// The engagement sums of each row: engagement events, engaged milliseconds, greatest scroll
    /// depth (-1: none).
    pub fn engagement(&self) -> anyhow::Result<[&[i64]; ENGAGEMENT_COLUMNS]> {
        let column = |i: usize| match self.column(i)? {
            Column::Counter(v) => Ok(v.as_slice()),
            _ => anyhow::bail!("engagement column {i} has the wrong type"),
        };
        Ok([column(ENGAGEMENTS)?, column(ENGAGED_MS)?, column(MAX_SCROLL_DEPTH)?])
    }

    /// The second of each row (`RowId::second`; [`UNKNOWN_SECOND`] in segments written before
    /// it was kept).
    pub fn seconds(&self) -> anyhow::Result<&[i64]> {
        match self.column(SECOND)? {
            Column::Counter(v) => Ok(v),
            _ => anyhow::bail!("the second column has the wrong type"),
        }
    }

    /// The blob the pending table keeps for this (in-memory) segment.
    pub fn pending_blob(&self) -> anyhow::Result<Vec<u8>> {
        let blob = PendingBlobRef { site: &self.site, generation: self.generation, columns: self.all_columns()? };
        Ok(postcard::to_allocvec(&blob)?)
    }

    /// Adds this segment's rows with a bucket in `lo..=hi` into `out`, re-encoding their values
    /// into `out`'s dictionaries.
    pub fn add_rows_to(&self, out: &mut SegmentRows, lo: Bucket, hi: Bucket) -> anyhow::Result<()> {
        let (buckets, visitors, visits) = (self.buckets()?, self.visitors()?, self.visits()?);
        let mut dims: Vec<(&[String], &[u32], Vec<u32>)> = Vec::with_capacity(DIMENSIONS);
        for i in 0..DIMENSIONS {
            let (values, codes) = self.dimension(i)?;
            dims.push((values, codes, vec![u32::MAX; values.len()]));
        }
        let counters: Vec<&[i64]> = (0..COUNTERS.len()).map(|i| self.counter(i)).collect::<anyhow::Result<_>>()?;
        let revenue = self.revenue()?;
        let [engagements, engaged_ms, max_scroll_depth] = self.engagement()?;
        let seconds = self.seconds()?;
        for row in 0..self.rows {
            let bucket = Bucket::from(buckets[row]);
            if bucket < lo || bucket > hi {
                continue;
            }
            let mut codes = [0u32; DIMENSIONS];
            for (i, (values, row_codes, remap)) in dims.iter_mut().enumerate() {
                let code = row_codes[row] as usize;
                if remap[code] == u32::MAX {
                    remap[code] = out.dictionaries[i].code(&values[code]);
                }
                codes[i] = remap[code];
            }
            let delta = RowSums {
                counters: Counters::from_array(std::array::from_fn(|i| counters[i][row])),
                revenue_micros: revenue[row],
                engagement: EngagementSums {
                    events: engagements[row],
                    engaged_ms: engaged_ms[row],
                    max_scroll_depth: max_scroll_depth[row],
                },
            };
            let id = RowId {
                bucket,
                visitor: visitors[row],
                visit: visits[row],
                second: seconds[row],
                depth: i8::try_from(max_scroll_depth[row]).unwrap_or(-1),
                codes,
            };
            out.add_codes(id, &delta);
        }
        Ok(())
    }
}

/// Decodes a pending table blob into a segment.
pub fn from_pending_blob(seq: u64, bytes: &[u8]) -> anyhow::Result<Segment> {
    let blob: PendingBlob = postcard::from_bytes(bytes)?;
    let columns = blob.columns.len();
    anyhow::ensure!(
        columns == COLUMNS || columns == COLUMNS - 1 || columns == COLUMNS - 1 - ENGAGEMENT_COLUMNS,
        "pending segment {seq} has {columns} columns"
    );
    let rows = blob.columns[BUCKET].len();
    anyhow::ensure!(blob.columns.iter().all(|c| c.len() == rows), "pending segment {seq} has ragged columns");
    anyhow::ensure!(
        matches!(blob.columns[BUCKET], Column::Buckets(_)),
        "pending segment {seq}: the bucket column has the wrong type"
    );
    Ok(Segment::loaded(&blob.site, blob.generation, blob.columns, Origin::Pending(seq)))
}
