//! Daily visitor-id salts: random, one per UTC day, the previous day's kept for visits across
//! midnight, older ones deleted, so a past day's visitor ids cannot be tied back to IPs.

use crate::embedded::database::SharedDatabase;
use redb::{ReadableTable, TableDefinition};
use std::sync::{Arc, Mutex};
use tally_model::visitor::{Salt, Salts};

const SALTS: TableDefinition<i64, [u8; 16]> = TableDefinition::new("salts");
const DAY_MS: i64 = 86_400_000;

/// The salt store, caching the salts of the current day.
pub struct SaltBook {
    db: Arc<SharedDatabase>,
    cached: Mutex<Option<(i64, Salts)>>,
}

impl SaltBook {
    /// A salt book kept in `db` (the event log's file).
    pub fn new(db: Arc<SharedDatabase>) -> SaltBook {
        SaltBook { db, cached: Mutex::new(None) }
    }

    /// The salts in force at `now_ms`; on the first call of a day, creates its salt and deletes
    /// salts older than the day before.
    pub fn salts_at(&self, now_ms: i64) -> anyhow::Result<Salts> {
        let day = now_ms.div_euclid(DAY_MS);
        let mut cached = self.cached.lock().map_err(|_| anyhow::anyhow!("salt cache poisoned"))?;
        if let Some((cached_day, salts)) = cached.as_ref()
            && *cached_day == day
        {
            return Ok(salts.clone());
        }
        let salts = self.rotate(day)?;
        *cached = Some((day, salts.clone()));
        Ok(salts)
    }

    fn rotate(&self, day: i64) -> anyhow::Result<Salts> {
        let salts = self.db.write(|txn| {
            let mut table = txn.open_table(SALTS)?;
            table.retain(|d, _| d >= day - 1)?;
            let current = get_or_create(&mut table, day)?;
            let previous = get_or_create(&mut table, day - 1)?;
            Ok(Salts { current, previous })
        })?;
        tracing::info!(day, "visitor-id salts rotated");
        Ok(salts)
    }
}

fn get_or_create(table: &mut redb::Table<'_, i64, [u8; 16]>, day: i64) -> anyhow::Result<Salt> {
    if let Some(existing) = table.get(day)? {
        return Ok(Salt(existing.value()));
    }
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a salt: {e}"))?;
    table.insert(day, bytes)?;
    Ok(Salt(bytes))
}
