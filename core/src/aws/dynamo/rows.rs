//! Rollup rows as DynamoDB stores them: a flush's per-dimension deltas of one site lineage and
//! local day (a delta item), and one slot's merged rows of a lineage and day (a fold item), each
//! a list of rows encoded with postcard and compressed with LZ4.

use super::error::StoreError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tally_model::breakdown::{Breakdown, Day, Grain, Tallies, day_of};

/// One stored row: its grain and period, breakdown, value and counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRow {
    /// [`Grain::code`].
    pub grain: u8,
    /// The hour bucket or local day.
    pub at: i64,
    /// [`tally_model::breakdown::Slot::code`].
    pub slot: u8,
    /// The dimension value (`""` for the total).
    pub value: String,
    /// The counters.
    pub tallies: Tallies,
}

/// The local day a row belongs to.
pub fn day_of_row(grain: u8, at: i64) -> Day {
    if grain == Grain::Hour.code() { day_of(at) } else { at }
}

/// A breakdown's nonzero rows by local day, each day's rows sorted.
pub fn rows_by_day(breakdown: &Breakdown) -> BTreeMap<Day, Vec<StoredRow>> {
    let mut days: BTreeMap<Day, Vec<StoredRow>> = BTreeMap::new();
    for (key, tallies) in breakdown.rows() {
        if tallies.is_zero() {
            continue;
        }
        let row = StoredRow {
            grain: key.grain.code(),
            at: key.at,
            slot: key.slot.code(),
            value: key.value.to_owned(),
            tallies: tallies.clone(),
        };
        days.entry(day_of_row(row.grain, row.at)).or_default().push(row);
    }
    for rows in days.values_mut() {
        rows.sort_by(|a, b| (a.slot, a.grain, a.at, &a.value).cmp(&(b.slot, b.grain, b.at, &b.value)));
    }
    days
}

/// Rows merged by (slot, grain, period, value); rows that net to zero are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergedRows(pub BTreeMap<(u8, u8, i64, String), Tallies>);

impl MergedRows {
    /// Adds rows in.
    pub fn add(&mut self, rows: impl IntoIterator<Item = StoredRow>) {
        for row in rows {
            self.0.entry((row.slot, row.grain, row.at, row.value)).or_default().add(&row.tallies);
        }
    }

    /// The nonzero rows, in key order.
    pub fn into_rows(self) -> Vec<StoredRow> {
        self.0
            .into_iter()
            .filter(|(_, t)| !t.is_zero())
            .map(|((slot, grain, at, value), tallies)| StoredRow { grain, at, slot, value, tallies })
            .collect()
    }
}

/// Encodes rows for an item attribute.
pub fn encode(rows: &[StoredRow]) -> Result<Vec<u8>, StoreError> {
    let bytes = postcard::to_allocvec(rows).map_err(|e| StoreError::Other(e.to_string()))?;
    Ok(lz4_flex::compress_prepend_size(&bytes))
}

/// Decodes what [`encode`] made.
pub fn decode(bytes: &[u8]) -> Result<Vec<StoredRow>, StoreError> {
    let bytes = lz4_flex::decompress_size_prepended(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    postcard::from_bytes(&bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_survive_encoding_and_merge_away_when_they_net_to_zero() {
        let row = |value: &str, visits: i64| StoredRow {
            grain: Grain::Day.code(),
            at: 20_000,
            slot: 3,
            value: value.into(),
            tallies: Tallies { visitors: visits, ..Tallies::default() },
        };
        let rows = vec![row("/a", 2), row("/b", 1)];
        assert_eq!(decode(&encode(&rows).expect("encode")).expect("decode"), rows);
        let mut merged = MergedRows::default();
        merged.add(rows);
        merged.add([row("/b", -1), row("/a", 3)]);
        assert_eq!(merged.into_rows(), vec![row("/a", 5)]);
    }
}
