//! The event ids that `tally import --kinesis-stream` put on each stream from this data
//! directory (`<data dir>/kinesis-imports.redb`), so that running a file again, or again after a
//! failed put, sends only what is not on the stream yet. Ids are recorded once `PutRecords`
//! accepted their records, in one durable commit per call. The same file keeps the import salts'
//! key (`pipeline::import_lines::import_key`).

use anyhow::Context;
use redb::{Database, ReadableDatabase, TableDefinition};
use std::path::Path;

/// The ledger's file in the data directory.
pub const LEDGER_FILE: &str = "kinesis-imports.redb";
/// (stream, event id) → (). Ids of lines without an `id` field start with their timestamp, so a
/// time-ordered file appends to this B-tree.
const PUT_IDS: TableDefinition<(&str, u128), ()> = TableDefinition::new("put_ids");

/// The ids put on one stream.
pub struct Ledger {
    db: Database,
    stream: String,
}

impl Ledger {
    /// Opens (or creates) the ledger of `dir` for `stream`.
    pub fn open(dir: &Path, stream: &str) -> anyhow::Result<Ledger> {
        let path = dir.join(LEDGER_FILE);
        let db = Database::create(&path).with_context(|| {
            format!("opening {} (is another import into Kinesis running from this data directory?)", path.display())
        })?;
        let txn = db.begin_write()?;
        txn.open_table(PUT_IDS)?;
        txn.commit()?;
        Ok(Ledger { db, stream: stream.to_owned() })
    }

    /// The ledger's database (it also holds the import salts' key).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// For each of `ids`, whether it was put on the stream before.
    pub fn put_before(&self, ids: &[u128]) -> anyhow::Result<Vec<bool>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PUT_IDS)?;
        ids.iter().map(|id| Ok(table.get((self.stream.as_str(), *id))?.is_some())).collect()
    }

    /// Records `ids` as put on the stream (one durable commit).
    pub fn record(&self, ids: impl IntoIterator<Item = u128>) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(PUT_IDS)?;
            for id in ids {
                table.insert((self.stream.as_str(), id), ())?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_remembered_per_stream_across_opens() {
        let dir = std::env::temp_dir().join(format!("tally-import-ledger-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        {
            let ledger = Ledger::open(&dir, "events").expect("opens");
            assert_eq!(ledger.put_before(&[1, 2]).expect("reads"), [false, false]);
            ledger.record([1]).expect("records");
        }
        let again = Ledger::open(&dir, "events").expect("opens again");
        assert_eq!(again.put_before(&[1, 2]).expect("reads"), [true, false]);
        drop(again);
        let other = Ledger::open(&dir, "other").expect("opens");
        assert_eq!(other.put_before(&[1]).expect("reads"), [false], "another stream has its own ids");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
