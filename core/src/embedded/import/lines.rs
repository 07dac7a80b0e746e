//! The lines of an import into the embedded backend: [`read_lines`] appends each batch to the
//! event log, which skips the ids it already holds, so re-running a file, or resuming after a
//! crash, counts nothing twice. The import salts' key is kept in the log's file.

use crate::embedded::log::EventLog;
use crate::pipeline::import_lines::{Batch, Summary, import_key, read_lines};
use crate::registry::Registry;
use anyhow::Context;
use std::io::BufRead;
use tally_model::codec;

/// Turns import lines into log entries of one event log (with its import salts).
#[derive(Clone)]
pub struct Importer {
    log: EventLog,
    registry: Registry,
    key: [u8; 16],
}

impl Importer {
    /// An importer into `log`, for the sites of `registry`; makes the import key on first use.
    pub fn new(log: EventLog, registry: Registry) -> anyhow::Result<Importer> {
        let key = log.database().with(import_key)?;
        Ok(Importer { log, registry, key })
    }

    /// The log it appends to.
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// Reads every line of `reader` and appends its events to the log in batches (blocking: run
    /// it on a blocking thread; `runtime` runs the appends). `progress` hears the bytes read so
    /// far and the events accepted after each batch.
    pub fn read_all(
        &self,
        reader: &mut dyn BufRead,
        runtime: &tokio::runtime::Handle,
        progress: &mut dyn FnMut(u64, u64),
    ) -> anyhow::Result<Summary> {
        let snapshot = self.registry.snapshot();
        let is_site = |domain: &str| snapshot.site(domain).is_some();
        let mut append = |batch: Batch| -> anyhow::Result<usize> {
            let encoded = batch.entries.iter().map(codec::encode).collect();
            let appended =
                runtime.block_on(self.log.append_unique(encoded, batch.ids)).context("writing the event log")?;
            Ok(appended.duplicates)
        };
        read_lines(reader, &self.key, &is_site, &mut append, progress)
    }
}
