//! Per-dimension rollups (tier 1 of the store): per site, local period and dimension, one row
//! per value with additive counters, and exact distinct visitors kept as additive counters.
//!
//! Rows are never the full combination of dimension values (that is [`crate::rollup`]'s cells):
//! an event adds to one row per dimension (its value there) and one total row, in its local day,
//! and for the total and the exit pages also in its local hour ([`Slot::keeps_hours`]). Visit
//! counters go to the rows of the visit's entry values, in the day (and, where kept, the hour)
//! it started, exactly as cells keep them in the entry cell.
//!
//! **Visitors** (design decision 12). A visitor id is keyed by the salt of one UTC day, so an id
//! never appears in two UTC days. Per id, [`Sightings`] remembers the local hours it was seen
//! in, per dimension value; it is needed only while that UTC day can still receive events. The
//! first sight of an id in an hour adds 1 to that hour row's `visitors`; the first sight in a
//! local day adds 1 to the day row's. One UTC day touches at most three local days, so an id
//! can be counted on up to three local days. For a range of whole local days the distinct count
//! is then `Σ visitors − Σ links_1 − Σ links_2` over the range ([`Tallies::visitors_until`]), where a
//! day row's `links_k` counts the ids whose next local day (after this one) was `k` days later:
//! an id seen on the days `S ∩ range`, a run of consecutive elements of its sorted days `S`, is
//! counted `|S ∩ range|` times and linked `|S ∩ range| − 1` times. Gaps of three or more days
//! cannot happen with UTC-day ids (no zone's offset moves by more than a day), so they are not
//! kept.
//!
//! **Exit pages** ([`Breakdown::add_exit`]) are visit-only rows: the visit counters of visits
//! (in the hour and day they started) by their exit page so far, and their visitors counted under
//! the id and in the bucket each visit started in. When a page view moves a visit's exit page,
//! the visit's counters so far move from the old exit's rows to the new one's, and its sighting
//! moves with them (reference-counted per id, exit value and start hour in [`Sightings::exits`],
//! since one id can have several visits in an hour). Exit rows hold no event counters.

use crate::dimension::Dimension;
use crate::money::{Money, RevenueSums};
use crate::rollup::{Bucket, CellKey, Counters};
use crate::session::Contribution;
use serde::{Deserialize, Serialize};

/// In-memory maps hash with a fixed seed: the model has no randomness, and these hashes are
/// never stored or compared across processes.
type Fast = foldhash::fast::FixedState;
type HashMap<K, V> = hashbrown::HashMap<K, V, Fast>;

/// A local day: days since 1970-01-01 on the site's wall clock (`bucket.div_euclid(24)`).
pub type Day = i64;

/// The local day a bucket belongs to.
pub fn day_of(bucket: Bucket) -> Day {
    bucket.div_euclid(24)
}

/// How long a row's period is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Grain {
    /// A local hour; `at` is a [`Bucket`].
    Hour,
    /// A local day; `at` is a [`Day`].
    Day,
}

impl Grain {
    /// Its stable number in storage keys.
    pub fn code(self) -> u8 {
        match self {
            Grain::Hour => 0,
            Grain::Day => 1,
        }
    }
}

/// Which breakdown a row belongs to: the site's totals, one dimension, or the custom props.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    /// The total over all values (its rows have the value `""`).
    Total,
    /// One dimension.
    Of(Dimension),
    /// Every custom prop: a row per (name, value), valued [`crate::props::row_value`]. Its rows
    /// hold event counters and visitors only.
    Props,
}

impl Slot {
    /// The total, then each dimension (not [`Slot::Props`]).
    pub fn all() -> impl Iterator<Item = Slot> {
        std::iter::once(Slot::Total).chain(Dimension::ALL.iter().map(|(d, _)| Slot::Of(*d)))
    }

    /// Its stable number in storage keys: 0 for the total, the dimension's code, 100 for props.
    pub fn code(self) -> u8 {
        match self {
            Slot::Total => 0,
            Slot::Of(d) => d.code(),
            Slot::Props => 100,
        }
    }

    /// Whether the slot has hour rows as well as day rows: the total, and the exit pages (which
    /// no other tier holds). A dimension or prop by hour is a question for the segments; its
    /// hour rows would be most of the rollups' bytes (a page has a row in every hour it is seen).
    pub fn keeps_hours(self) -> bool {
        matches!(self, Slot::Total) || matches!(self, Slot::Of(d) if d.is_exit())
    }

    /// This slot's value in a cell (`""` for the props, which cells do not hold).
    pub fn value(self, key: &CellKey) -> &str {
        match self {
            Slot::Total | Slot::Props => "",
            Slot::Of(d) => d.value(key),
        }
    }

    /// This slot's value in an event's cell ([`Contribution::value`]).
    pub fn value_in<'a>(self, c: &Contribution<'a>) -> &'a str {
        match self {
            Slot::Total | Slot::Props => "",
            Slot::Of(d) => c.value(d),
        }
    }
}

/// The additive counters of one row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tallies {
    /// Events, page views and the visit counters of visits that entered with this value.
    pub counters: Counters,
    /// Visitor ids first seen in this period with this value.
    pub visitors: i64,
    /// Day rows only: ids seen on this day whose next local day (with this value) is the next
    /// day.
    pub links_1: i64,
    /// Day rows only: ids seen on this day whose next local day (with this value) is two days
    /// later.
    pub links_2: i64,
    /// Revenue of the events counted here, per currency (event rows only, never visit or exit
    /// rows).
    pub revenue: RevenueSums,
}

impl Tallies {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Tallies) {
        self.counters.add(&other.counters);
        self.visitors += other.visitors;
        self.links_1 += other.links_1;
        self.links_2 += other.links_2;
        self.revenue.merge(&other.revenue);
    }

    /// Whether every counter is zero.
    pub fn is_zero(&self) -> bool {
        *self == Tallies::default()
    }

    /// This row's share of the distinct visitors of a value over whole local days up to `last`
    /// (from any first day up to `day`): its first sights, less the links to days up to `last`.
    /// Summed over the day rows of `first..=last`, the exact distinct count. An hour row has no
    /// links: its share is its own first sights.
    pub fn visitors_until(&self, day: Day, last: Day) -> i64 {
        let mut share = self.visitors;
        if day < last {
            share -= self.links_1;
        }
        if day + 1 < last {
            share -= self.links_2;
        }
        share
    }
}

/// A row's key within one site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RowKey<'a> {
    /// Hour or day.
    pub grain: Grain,
    /// The bucket (hour) or day.
    pub at: i64,
    /// The breakdown.
    pub slot: Slot,
    /// The dimension value (`""` for the total).
    pub value: &'a str,
}

/// Row deltas of one site (or lineage), as one flush produces them. Merging adds them, so it is
/// associative and commutative with the empty breakdown neutral.
///
/// Values are interned: a row is keyed by (grain, period, slot, value code), so adding to a row
/// hashes a few integers, and each distinct value is hashed and kept once per flush.
#[derive(Debug, Clone, Default)]
pub struct Breakdown {
    /// The distinct values, by code.
    values: Vec<String>,
    /// The [`sighting_hash`] of each value, by code (computed once per value).
    sights: Vec<u64>,
    /// The code of each value in `values` (a table of codes hashed by their value).
    codes: hashbrown::HashTable<u32>,
    /// Delta per (grain, period, slot, value code).
    rows: HashMap<(Grain, i64, Slot, u32), Tallies>,
    /// What [`Breakdown::add`] remembers of each visit it has seen ([`Contribution::visit_key`]).
    visits: HashMap<(u64, i64), VisitCodes>,
}

/// How many slots [`Breakdown::add`] adds an event to: the total and each cell dimension.
const CELL_SLOTS: usize = Dimension::CELL.len() + 1;

/// The slots of [`Breakdown::add`], in order: the total, then each cell dimension.
fn cell_slots() -> impl Iterator<Item = Slot> {
    std::iter::once(Slot::Total).chain(Dimension::CELL.iter().map(|(d, _)| Slot::Of(*d)))
}

/// What a breakdown remembers of one visit while it adds the visit's events: the value code of
/// its entry cell in each of [`cell_slots`] (a visit's events share all but their own name,
/// hostname and page), and the (visitor id, local day) its events were last seen with them.
#[derive(Debug, Clone, Copy)]
struct VisitCodes {
    entry: [u32; CELL_SLOTS],
    seen: Option<(u64, Day)>,
}

/// Two breakdowns are equal when they hold the same row deltas (whatever their value codes).
impl PartialEq for Breakdown {
    fn eq(&self, other: &Breakdown) -> bool {
        self.rows.len() == other.rows.len()
            && self.rows().all(|(key, t)| {
                let code = other.code_of(key.value);
                code.and_then(|c| other.rows.get(&(key.grain, key.at, key.slot, c))) == Some(t)
            })
    }
}

impl Eq for Breakdown {}

/// The in-memory hash of a value (never stored).
fn value_hash(value: &str) -> u64 {
    use std::hash::BuildHasher;
    Fast::default().hash_one(value)
}

impl Breakdown {
    /// Every row delta.
    pub fn rows(&self) -> impl Iterator<Item = (RowKey<'_>, &Tallies)> {
        self.rows.iter().map(|(&(grain, at, slot, code), t)| {
            (RowKey { grain, at, slot, value: self.values[code as usize].as_str() }, t)
        })
    }

    /// The code of `value`, if this breakdown holds it.
    fn code_of(&self, value: &str) -> Option<u32> {
        self.codes.find(value_hash(value), |&c| self.values[c as usize] == value).copied()
    }

    /// The code of `value`, added if new.
    fn intern(&mut self, value: &str) -> u32 {
        let (values, sights) = (&mut self.values, &mut self.sights);
        let entry =
            self.codes.entry(value_hash(value), |&c| values[c as usize] == value, |&c| value_hash(&values[c as usize]));
        *entry
            .or_insert_with(|| {
                values.push(value.to_owned());
                sights.push(sighting_hash(value));
                u32::try_from(values.len() - 1).unwrap_or(u32::MAX)
            })
            .get()
    }

    fn row(&mut self, grain: Grain, at: i64, slot: Slot, value: &str) -> &mut Tallies {
        let code = self.intern(value);
        self.row_of(grain, at, slot, code)
    }

    fn row_of(&mut self, grain: Grain, at: i64, slot: Slot, code: u32) -> &mut Tallies {
        self.rows.entry((grain, at, slot, code)).or_default()
    }

    /// Adds to the row of an interned value at both grains: the bucket's hour (if the slot keeps
    /// hours) and its day.
    fn add_both_code(&mut self, bucket: Bucket, slot: Slot, code: u32, counters: &Counters) {
        if slot.keeps_hours() {
            self.row_of(Grain::Hour, bucket, slot, code).counters.add(counters);
        }
        self.row_of(Grain::Day, day_of(bucket), slot, code).counters.add(counters);
    }

    /// Adds what one event contributes to the total and the cell dimensions; `seen` is the state
    /// of its visitor id (see [`Sightings`]), updated here. [`Breakdown::add_exit`] adds the rest.
    ///
    /// A visit's values are interned once per breakdown, and an event of a visit whose visitor
    /// id was already seen with them on the same local day skips looking again for the slots
    /// without hour rows: that look would find them.
    pub fn add(&mut self, c: &Contribution<'_>, seen: &mut Sightings) {
        let visit = self.visit_codes(c);
        let day = day_of(c.bucket);
        let seen_today = visit.seen == Some((c.visitor, day));
        for (i, slot) in cell_slots().enumerate() {
            let own = matches!(slot, Slot::Of(d) if d.is_event_own());
            let code = if own { self.intern(slot.value_in(c)) } else { visit.entry[i] };
            self.add_both_code(c.bucket, slot, code, &c.counters);
            if !c.visit.is_zero() {
                self.add_both_code(c.visit_bucket, slot, visit.entry[i], &c.visit);
            }
            if own || slot.keeps_hours() || !seen_today {
                self.see(seen, slot, code, c.bucket);
            }
        }
        if let Some(known) = self.visits.get_mut(&c.visit_key()) {
            known.seen = Some((c.visitor, day));
        }
    }

    /// The codes of the visit of `c`, interned on its first event here.
    fn visit_codes(&mut self, c: &Contribution<'_>) -> VisitCodes {
        if let Some(known) = self.visits.get(&c.visit_key()) {
            return *known;
        }
        let mut entry = [0u32; CELL_SLOTS];
        for (code, slot) in entry.iter_mut().zip(cell_slots()) {
            *code = self.intern(slot.value(c.entry));
        }
        let codes = VisitCodes { entry, seen: None };
        self.visits.insert(c.visit_key(), codes);
        codes
    }

    /// Adds one event's revenue to the rows its event counters went to ([`Breakdown::add`] and
    /// [`Breakdown::add_props`]): the total and each cell dimension's value, and each of its
    /// props' rows.
    pub fn add_revenue(&mut self, c: &Contribution<'_>, props: &[(String, String)], money: Money) {
        let add = |this: &mut Breakdown, slot: Slot, value: &str| {
            if slot.keeps_hours() {
                this.row(Grain::Hour, c.bucket, slot, value).revenue.add(money.currency, money.micros.into(), 1);
            }
            this.row(Grain::Day, day_of(c.bucket), slot, value).revenue.add(money.currency, money.micros.into(), 1);
        };
        for slot in cell_slots() {
            add(self, slot, slot.value_in(c));
        }
        for (name, value) in props {
            add(self, Slot::Props, &crate::props::row_value(name, value));
        }
    }

    /// Adds what one event contributes to its props' rows (its event counters and visitor, in
    /// its day: props keep no hour rows); `seen` is the state of its visitor id.
    pub fn add_props(&mut self, c: &Contribution<'_>, props: &[(String, String)], seen: &mut Sightings) {
        for (name, value) in props {
            let code = self.intern(&crate::props::row_value(name, value));
            self.add_both_code(c.bucket, Slot::Props, code, &c.counters);
            self.see(seen, Slot::Props, code, c.bucket);
        }
    }

    /// Adds what one event changes in its visit's exit-page rows; `start_seen` is the state of
    /// the id its visit started under ([`Contribution::start_visitor`]), updated here.
    pub fn add_exit(&mut self, c: &Contribution<'_>, start_seen: &mut Sightings) {
        for d in [Dimension::ExitPage, Dimension::ExitPageHostname] {
            let slot = Slot::Of(d);
            let to = self.intern(d.exit_value(c.exit));
            if let Some((from, before)) = c.exit_moved {
                let from = self.intern(d.exit_value(from));
                if from != to {
                    self.add_both_code(c.visit_bucket, slot, from, &before.negated());
                    self.add_both_code(c.visit_bucket, slot, to, before);
                    self.see_exit(start_seen, slot, from, c.visit_bucket, -1);
                    self.see_exit(start_seen, slot, to, c.visit_bucket, 1);
                }
            }
            if !c.visit.is_zero() {
                self.add_both_code(c.visit_bucket, slot, to, &c.visit);
            }
            if c.starts_visit() {
                self.see_exit(start_seen, slot, to, c.visit_bucket, 1);
            }
        }
    }

    /// Adds `delta` (±1) visits of the id that start in `bucket` and exit with the interned `value`: the id is
    /// seen there while at least one is.
    fn see_exit(&mut self, seen: &mut Sightings, slot: Slot, value: u32, bucket: Bucket, delta: i32) {
        let (code, hash) = (slot.code(), self.sights[value as usize]);
        let found = seen.exits.iter().position(|(c, h, b, _)| *c == code && *b == bucket && *h == hash);
        let at = found.unwrap_or_else(|| {
            seen.exits.push((code, hash, bucket, 0));
            seen.exits.len() - 1
        });
        let before = seen.exits[at].3;
        let after = before.saturating_add_signed(delta);
        if after == 0 {
            seen.exits.swap_remove(at);
        } else {
            seen.exits[at].3 = after;
        }
        match (before, after) {
            (0, 1) => self.see(seen, slot, value, bucket),
            (1, 0) => self.unsee(seen, slot, value, bucket),
            _ => {}
        }
    }

    /// Takes back a sight of the visitor with `value` in `bucket` (exit rows only).
    fn unsee(&mut self, seen: &mut Sightings, slot: Slot, value: u32, bucket: Bucket) {
        let (code, hash) = (slot.code(), self.sights[value as usize]);
        let Some(at) = seen.hours.iter().position(|e| *e == (code, hash, bucket)) else { return };
        let before = days(seen, code, hash);
        seen.hours.swap_remove(at);
        let after = days(seen, code, hash);
        if slot.keeps_hours() {
            self.row_of(Grain::Hour, bucket, slot, value).visitors -= 1;
        }
        if before != after {
            self.add_day_terms(&before, slot, value, -1);
            self.add_day_terms(&after, slot, value, 1);
        }
    }

    /// Records that the visitor was seen with the interned `value` in `bucket`, counting first
    /// sights.
    fn see(&mut self, seen: &mut Sightings, slot: Slot, value: u32, bucket: Bucket) {
        let (code, hash) = (slot.code(), self.sights[value as usize]);
        // A slot without hour rows needs only the days: one entry per day (at its first hour),
        // however many hours of it the id was seen in.
        let at = if slot.keeps_hours() { bucket } else { day_of(bucket) * 24 };
        if seen.hours.contains(&(code, hash, at)) {
            return;
        }
        let before = days(seen, code, hash);
        seen.hours.push((code, hash, at));
        if slot.keeps_hours() {
            self.row_of(Grain::Hour, bucket, slot, value).visitors += 1;
        }
        let day = day_of(bucket);
        if !before.contains(&day) {
            let mut after = before.clone();
            after.insert(after.partition_point(|d| *d < day), day);
            self.add_day_terms(&before, slot, value, -1);
            self.add_day_terms(&after, slot, value, 1);
        }
    }

    /// Adds `sign` × an id's day terms: 1 visitor on each of its days, 1 link from each day to
    /// the next.
    fn add_day_terms(&mut self, days: &[Day], slot: Slot, value: u32, sign: i64) {
        for (i, &day) in days.iter().enumerate() {
            let row = self.row_of(Grain::Day, day, slot, value);
            row.visitors += sign;
            match days.get(i + 1).map(|next| next - day) {
                Some(1) => row.links_1 += sign,
                Some(2) => row.links_2 += sign,
                _ => {}
            }
        }
    }

    /// Merges `other` into `self`.
    pub fn merge(&mut self, other: Breakdown) {
        for ((grain, at, slot, code), tallies) in &other.rows {
            self.row(*grain, *at, *slot, &other.values[*code as usize]).add(tallies);
        }
    }
}

/// The distinct local days (sorted) on which `seen` holds a sight of (slot `code`, value `hash`).
fn days(seen: &Sightings, code: u8, hash: u64) -> smallvec::SmallVec<[Day; 4]> {
    let mut days: smallvec::SmallVec<[Day; 4]> =
        seen.hours.iter().filter(|(c, h, _)| *c == code && *h == hash).map(|(_, _, b)| day_of(*b)).collect();
    days.sort_unstable();
    days.dedup();
    days
}

/// How [`Sightings`] remember a value: SipHash-1-3 of its bytes with a fixed key, stable across
/// processes and releases (sightings are stored). Two values of one slot that one visitor id
/// was seen with on one day would have to collide in 64 bits (about 2⁻⁶⁴ per pair) for the id's
/// second value to go uncounted.
pub fn sighting_hash(value: &str) -> u64 {
    use std::hash::Hasher;
    let mut hasher = siphasher::sip::SipHasher13::new_with_keys(0, 0);
    hasher.write(value.as_bytes());
    hasher.finish()
}

/// Where one visitor id has been seen: per (slot code, value), the local hours. Kept while the
/// id's UTC day can still receive events, then dropped. Values are kept as their
/// [`sighting_hash`], so the state of an id is a few fixed-size entries per slot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sightings {
    /// (slot code, value hash, bucket): one entry per hour the id was seen in with the value,
    /// for the slots with hour rows ([`Slot::keeps_hours`]); for the others one per day, at the
    /// day's first hour (entries at other hours, which stores before this rule hold, count the
    /// same day).
    pub hours: Vec<(u8, u64, Bucket)>,
    /// Exit slots: (slot code, exit value hash, start bucket, how many of the id's visits that
    /// started in that bucket exit there now); only nonzero counts are kept.
    pub exits: Vec<(u8, u64, Bucket, u32)>,
}

#[cfg(test)]
mod tests;
