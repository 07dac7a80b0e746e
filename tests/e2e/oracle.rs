//! The oracle: random traffic on sites in five time zones (half- and quarter-hour offsets, DST
//! changes in the range, visits across local and UTC midnights, custom events with props and
//! revenue) goes in through `tally import`; goals are saved after it; 500 random queries (every
//! filter operator, `and`/`or`/`not`, `has_done`, goals as dimension and filter, comparisons,
//! the `_name` dimensions, now and then only some of the metrics), answered by both tiers, are
//! compared with a brute-force computation over the raw events written here, independently of
//! Tally's code.

use crate::harness::{ServerProcess, TALLY, TempDir, key_create, site_add, tally_ok};

include!("../oracle/model.rs");

/// Runs `tally import FILE` with flushes of one entry (each commit waits for an fsync, so a few
/// hundred of them leave time to kill it) and no state snapshot before the end, and SIGKILLs it
/// once a flush has committed.
fn import_killed_after_a_flush(file: &std::path::Path, data: &str) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(TALLY)
        .args(["import", file.to_str().unwrap(), "--data-dir", data, "--no-progress", "--flush-max-entries", "1"])
        .args(["--state-snapshot-entries", "1000000"])
        .env("TALLY_LOG", "warn,tally_core::embedded::aggregate=debug")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut flushed = false;
    for line in stderr.lines() {
        if line.unwrap().contains("flushed") {
            flushed = true;
            break;
        }
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(flushed && !status.success(), "the import ended before it was killed: {status}");
}
#[tokio::test]
async fn both_tiers_equal_brute_force_across_zones() {
    let dir = TempDir::new("oracle");
    let mut rng = Rng(0x7a11_7e57);
    let mut sites = Vec::new();
    for (site, zone_name) in ZONES {
        site_add(dir.path(), site, Some(zone_name));
        let zone = TimeZone::get(zone_name).unwrap();
        let events = traffic(&mut rng, &zone);
        let file = dir.path().join(format!("{site}.ndjson"));
        std::fs::write(&file, ndjson(site, &events)).unwrap();
        let key = key_create(dir.path(), site);
        sites.push((site, zone, events, key, file));
    }
    let data = dir.path().to_str().unwrap();
    // Flushes of a few entries each, for most sites: visits and sightings then cross many flushes,
    // each built while the one before it commits, and many state snapshots (or none but the last).
    let batching = [("50000", "500000"), ("7", "5"), ("64", "1"), ("3", "40"), ("500", "500000")];
    for ((_, _, events, _, file), (flush, snapshot)) in sites.iter().zip(batching) {
        let file = file.to_str().unwrap();
        let out = tally_ok(&[
            "import",
            file,
            "--data-dir",
            data,
            "--no-progress",
            "--flush-max-entries",
            flush,
            "--state-snapshot-entries",
            snapshot,
        ]);
        assert!(out.contains(&format!("imported {} events", events.len())), "{out}");
    }
    // A crash after some flushes committed but before the visit state was written: the next
    // run replays the log from the last state snapshot, and counts nothing twice.
    let crashed = dir.path().join("crashed.ndjson");
    let crash_site = "crash.example";
    site_add(dir.path(), crash_site, Some("Asia/Kathmandu"));
    let crash_zone = TimeZone::get("Asia/Kathmandu").unwrap();
    let crash_events = traffic(&mut rng, &crash_zone);
    std::fs::write(&crashed, ndjson(crash_site, &crash_events)).unwrap();
    let crash_key = key_create(dir.path(), crash_site);
    import_killed_after_a_flush(&crashed, data);
    let replayed = crate::harness::run_cli(&["import", crashed.to_str().unwrap(), "--data-dir", data, "--no-progress"]);
    assert!(replayed.status.success(), "{replayed:?}");
    assert!(replayed.stdout.contains(&format!("already imported (skipped): {}", crash_events.len())), "{replayed:?}");
    assert!(replayed.stderr.contains("restored it by replaying"), "no visit state replayed: {replayed:?}");
    sites.push((crash_site, crash_zone, crash_events, crash_key, crashed));
    // Importing the same file again counts nothing twice.
    let again = tally_ok(&["import", sites[0].4.to_str().unwrap(), "--data-dir", data, "--no-progress"]);
    assert!(again.contains(&format!("already imported (skipped): {}", sites[0].2.len())), "{again}");

    // Goals saved after the traffic count over all of it.
    for (site, ..) in &sites {
        for (_, flag, value) in GOALS {
            let goal: &[&str] = if flag == "--scroll" { &["--page", value, "--scroll", "50"] } else { &[flag, value] };
            tally_ok(&[&["goal", "add", "--site", site][..], goal, &["--data-dir", data]].concat());
        }
    }
    let server = ServerProcess::spawn(dir.path(), &[]);
    let sites: Vec<OracleSite> =
        sites.into_iter().map(|(site, zone, events, key, _)| (site, zone, events, key)).collect();
    run_queries(server.base(), &sites, &mut rng).await;
}
