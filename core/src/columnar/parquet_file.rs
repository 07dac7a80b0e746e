//! A segment as a Parquet file: one row group, every column dictionary-encoded and
//! Snappy-compressed, dimension columns as Arrow dictionaries of strings so that any Parquet
//! reader (DuckDB, ClickHouse, pandas) sees plain text columns. Only the time, visitor, visit and
//! counter columns carry min/max statistics: those of the text columns were 3 % of an
//! import's CPU samples in a profile (every value compared as it is written), and no query of
//! ours reads them.

use super::segment::{BUCKET, COLUMNS, COUNTERS, Column, REVENUE, SECOND, Segment, VISIT, VISITOR, absent_value};
use anyhow::Context;
use arrow_array::types::UInt32Type;
use arrow_array::{
    Array, ArrayRef, Decimal128Array, DictionaryArray, Int32Array, Int64Array, RecordBatch, StringArray, UInt32Array,
    UInt64Array,
};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, Encoding};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::reader::ChunkReader;
use parquet::schema::types::ColumnPath;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use tally_model::dimension::Dimension;
use tally_model::segment::DIMENSIONS;

/// Revenue is a decimal of this many digits…
const MONEY_PRECISION: u8 = 38;
/// …six of them after the point (micro-units).
const MONEY_SCALE: i8 = 6;

/// The file's column names, in column order.
fn column_names() -> Vec<&'static str> {
    let mut names = vec!["local_hour", "visitor_id", "visit_id"];
    names.extend(Dimension::CELL.iter().map(|(_, name)| name.split_once(':').map_or(*name, |(_, n)| n)));
    names.extend(["props", "revenue_currency"]);
    names.extend(COUNTERS);
    names.extend(["revenue", "engagements", "engaged_ms", "max_scroll_depth", "second"]);
    names
}

fn schema() -> Schema {
    let names = column_names();
    let fields: Vec<Field> = (0..COLUMNS)
        .map(|i| {
            let kind = match i {
                BUCKET => DataType::Int32,
                VISITOR | VISIT => DataType::UInt64,
                i if i < 3 + DIMENSIONS => DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Utf8)),
                REVENUE => DataType::Decimal128(MONEY_PRECISION, MONEY_SCALE),
                _ => DataType::Int64,
            };
            Field::new(names[i], kind, false)
        })
        .collect();
    Schema::new(fields)
}

/// Encodes `segment` (all columns) into `out`, and returns it.
fn encode_into<W: Write + Send>(segment: &Segment, out: W) -> anyhow::Result<W> {
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(COLUMNS);
    for column in segment.all_columns()? {
        let array: ArrayRef = match column {
            Column::Buckets(v) => Arc::new(Int32Array::from(v.clone())),
            Column::Visitors(v) => Arc::new(UInt64Array::from(v.clone())),
            Column::Dimension { values, codes } => {
                let keys = UInt32Array::from(codes.clone());
                let values = Arc::new(StringArray::from_iter_values(values.iter()));
                Arc::new(DictionaryArray::<UInt32Type>::try_new(keys, values)?)
            }
            Column::Counter(v) => Arc::new(Int64Array::from(v.clone())),
            Column::Money(v) => {
                Arc::new(Decimal128Array::from(v.clone()).with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)?)
            }
        };
        arrays.push(array);
    }
    let batch = RecordBatch::try_new(Arc::new(schema()), arrays)?;
    let mut properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(segment.rows.max(1)))
        .set_dictionary_page_size_limit(64 << 20);
    for name in &column_names()[3..3 + DIMENSIONS] {
        properties = properties.set_column_statistics_enabled(ColumnPath::from(*name), EnabledStatistics::None);
    }
    // Seconds are nearly all distinct, and rows come sorted by visitor and time: deltas pack them
    // into a few bits each, where a dictionary would keep every value.
    let second = ColumnPath::from(column_names()[SECOND]);
    properties = properties
        .set_column_dictionary_enabled(second.clone(), false)
        .set_column_encoding(second, Encoding::DELTA_BINARY_PACKED);
    let mut writer = ArrowWriter::try_new(out, batch.schema(), Some(properties.build()))?;
    writer.write(&batch)?;
    Ok(writer.into_inner()?)
}

/// `segment` as the bytes of a Parquet file (an S3 object's body).
pub fn encode(segment: &Segment) -> anyhow::Result<Vec<u8>> {
    encode_into(segment, Vec::new())
}

/// Writes `segment` (all columns) to `path` through a temporary file, synced before it is renamed
/// into place; returns the file's size in bytes.
pub fn write(segment: &Segment, path: &Path) -> anyhow::Result<u64> {
    let tmp = path.with_extension("parquet.tmp");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut out = encode_into(segment, std::io::BufWriter::new(file))?;
    out.flush()?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let bytes = file.metadata()?.len();
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} into place", tmp.display()))?;
    Ok(bytes)
}

/// Reads column `i` of the file at `path`.
pub fn read_column(path: &Path, i: usize) -> anyhow::Result<Column> {
    let file = std::fs::File::open(path).with_context(|| format!("opening segment {}", path.display()))?;
    column_of(file, i, &path.display().to_string())
}

/// Every column of a Parquet segment held in memory (an S3 object's body), named `what` in errors.
pub fn decode(bytes: bytes::Bytes, what: &str) -> anyhow::Result<Vec<Column>> {
    (0..COLUMNS).map(|i| column_of(bytes.clone(), i, what)).collect()
}

/// Reads column `i` of the Parquet segment `source`, named `path` in errors.
fn column_of<R: ChunkReader + 'static>(source: R, i: usize, path: &str) -> anyhow::Result<Column> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(source)?;
    // Files written before the engagement columns or the second existed: rows without
    // engagement, at an unknown second.
    if i >= builder.parquet_schema().root_schema().get_fields().len() && i > REVENUE {
        let rows = usize::try_from(builder.metadata().file_metadata().num_rows())?;
        return Ok(Column::Counter(vec![absent_value(i); rows]));
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), [i]);
    let reader = builder.with_projection(mask).with_batch_size(1 << 16).build()?;
    let mut out = match i {
        BUCKET => Column::Buckets(Vec::new()),
        VISITOR | VISIT => Column::Visitors(Vec::new()),
        i if i < 3 + DIMENSIONS => Column::Dimension { values: Vec::new(), codes: Vec::new() },
        REVENUE => Column::Money(Vec::new()),
        _ => Column::Counter(Vec::new()),
    };
    let mut interned: HashMap<String, u32> = HashMap::new();
    for batch in reader {
        let batch = batch.with_context(|| format!("reading {path}"))?;
        let array = batch.column(0);
        anyhow::ensure!(array.null_count() == 0, "{path}: column {i} has nulls");
        let any = array.as_any();
        match &mut out {
            Column::Buckets(v) => v.extend(downcast::<Int32Array>(any, path)?.values().iter()),
            Column::Visitors(v) => v.extend(downcast::<UInt64Array>(any, path)?.values().iter()),
            Column::Counter(v) => v.extend(downcast::<Int64Array>(any, path)?.values().iter()),
            Column::Money(v) => v.extend(downcast::<Decimal128Array>(any, path)?.values().iter()),
            Column::Dimension { values, codes } => {
                let mut intern = |text: &str| -> u32 {
                    if let Some(&code) = interned.get(text) {
                        return code;
                    }
                    let code = u32::try_from(values.len()).unwrap_or(u32::MAX);
                    values.push(text.to_owned());
                    interned.insert(text.to_owned(), code);
                    code
                };
                if let Some(dictionary) = any.downcast_ref::<DictionaryArray<UInt32Type>>() {
                    let texts = downcast::<StringArray>(dictionary.values().as_any(), path)?;
                    let remap: Vec<u32> = texts.iter().map(|t| intern(t.unwrap_or_default())).collect();
                    codes.extend(dictionary.keys().values().iter().map(|k| remap[*k as usize]));
                } else {
                    let texts = downcast::<StringArray>(any, path)?;
                    codes.extend(texts.iter().map(|t| intern(t.unwrap_or_default())));
                }
            }
        }
    }
    Ok(out)
}

fn downcast<'a, T: 'static>(any: &'a dyn std::any::Any, path: &str) -> anyhow::Result<&'a T> {
    any.downcast_ref::<T>().ok_or_else(|| anyhow::anyhow!("{path}: a column has an unexpected type"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columnar::segment::{ENGAGEMENT_COLUMNS, Origin, UNKNOWN_SECOND};
    use tally_model::segment::{EngagementSums, RowId, RowSums, SegmentRows};

    /// A segment of two rows: one with engagement sums, one without.
    fn segment() -> Segment {
        let mut rows = SegmentRows::default();
        let codes = [0u32; DIMENSIONS];
        for dictionary in &mut rows.dictionaries {
            dictionary.code("");
        }
        let engaged = EngagementSums { events: 2, engaged_ms: 9_000, max_scroll_depth: 75 };
        let id = |bucket, second, depth| RowId { bucket, visitor: 1, visit: 1, second, depth, codes };
        rows.add_codes(id(10, 36_000, 75), &RowSums { engagement: engaged, ..RowSums::default() });
        let mut counted = RowSums::default();
        counted.counters.events = 1;
        rows.add_codes(id(11, 39_601, -1), &counted);
        Segment::from_rows("a.com", 1, &rows, |_| true, true, Origin::Object("test".into())).expect("rows")
    }

    #[test]
    fn engagement_columns_round_trip_and_files_without_them_read_as_none() {
        let bytes = bytes::Bytes::from(encode(&segment()).expect("encoded"));
        let columns = decode(bytes.clone(), "test").expect("decoded");
        let read = Segment::loaded("a.com", 1, columns, Origin::Object("test".into()));
        let [events, ms, depth] = read.engagement().expect("engagement");
        assert_eq!((events, ms, depth), (&[2, 0][..], &[9_000, 0][..], &[75, -1][..]));
        assert_eq!(read.seconds().expect("seconds"), &[36_000, 39_601]);

        // The same file as a release before the engagement columns wrote it.
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).expect("reader");
        let mask = ProjectionMask::roots(builder.parquet_schema(), 0..COLUMNS - ENGAGEMENT_COLUMNS - 1);
        let batch = builder.with_projection(mask).build().expect("reader").next().expect("a batch").expect("read");
        let mut older = ArrowWriter::try_new(Vec::new(), batch.schema(), None).expect("writer");
        older.write(&batch).expect("written");
        let older = bytes::Bytes::from(older.into_inner().expect("file"));
        let columns = decode(older, "older").expect("decoded");
        let read = Segment::loaded("a.com", 1, columns, Origin::Object("older".into()));
        assert_eq!(read.counter(0).expect("events"), &[0, 1]);
        let [events, ms, depth] = read.engagement().expect("engagement");
        assert_eq!((events, ms, depth), (&[0, 0][..], &[0, 0][..], &[-1, -1][..]));
        assert_eq!(read.seconds().expect("seconds"), &[UNKNOWN_SECOND; 2], "no second kept");
    }
}
