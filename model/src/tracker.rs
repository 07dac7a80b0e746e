//! The tracking script `tally.js`, built from `tracker/src/tally.js` by `tracker/build` (the
//! browser tests check that the committed build matches its source). Every host serves these
//! same bytes at `/js/tally.js`: `tally serve`, `tally query` and the edge Worker.

/// The script, as sites load it.
pub const SCRIPT: &str = include_str!("../../tracker/tally.js");

/// The path it is served at.
pub const PATH: &str = "/js/tally.js";

/// Its content type.
pub const CONTENT_TYPE: &str = "application/javascript; charset=utf-8";

/// Its cache lifetime: an hour, so a new release reaches sites within one.
pub const CACHE_CONTROL: &str = "public, max-age=3600";
