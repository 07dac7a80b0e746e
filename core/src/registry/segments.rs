//! Saved segments of a site: named filter lists, saved and removed by id. The filters are
//! checked by the caller (they are Stats API filters, which the query module parses).

use std::path::Path;

use super::atomic_write::update;
use super::sites::normalize;
use super::types::{RegistryError, SavedSegment};

/// Most saved segments per site.
pub const MAX_SEGMENTS: usize = 100;
/// Longest segment name.
const MAX_NAME_CHARS: usize = 200;

/// Saves a segment of `site` named `name` with `filters` (JSON text); returns it with its id.
pub fn add_segment(data_dir: &Path, site: &str, name: &str, filters: &str) -> Result<SavedSegment, RegistryError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(RegistryError::InvalidSetting(format!("a segment's name has 1 to {MAX_NAME_CHARS} characters")));
    }
    let domain = normalize(site)?;
    update(data_dir, |file, _| {
        let record = file.site_mut(&domain)?;
        if record.segments.len() >= MAX_SEGMENTS {
            return Err(RegistryError::InvalidSetting(format!("a site has at most {MAX_SEGMENTS} saved segments")));
        }
        let id = record.segments.iter().map(|s| s.id).max().unwrap_or(0) + 1;
        let segment = SavedSegment { id, name: name.to_owned(), filters: filters.to_owned() };
        record.segments.push(segment.clone());
        Ok(segment)
    })
}

/// Removes segment `id` of `site`.
pub fn remove_segment(data_dir: &Path, site: &str, id: u32) -> Result<(), RegistryError> {
    let domain = normalize(site)?;
    update(data_dir, |file, _| {
        let record = file.site_mut(&domain)?;
        let before = record.segments.len();
        record.segments.retain(|s| s.id != id);
        if record.segments.len() == before {
            return Err(RegistryError::InvalidSetting(format!("site {domain} has no segment {id}")));
        }
        Ok(())
    })
}
