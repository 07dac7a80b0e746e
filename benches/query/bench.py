#!/usr/bin/env python3
"""The dashboard's questions, answered by Tally, DuckDB and chDB over the same events.

Generates a site (generate.py), imports it into Tally (`tally import`), writes the same events as
Parquet (DuckDB), loads that Parquet into DuckDB and chDB (in memory), and runs every query
several times in each system: Tally over HTTP on a cache miss (each run is a query the cache has
not seen) and on a hit. Checks that all three give the same answer, and writes report.md and
report.json. Run it through `benches/query/run`, which installs the peers and builds Tally.
"""
import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SITE = "shop.example"
# The generated days, and the day after them that the last visits reach into.
FIRST, LAST = "2026-10-01", "2026-10-31"
# The funnel the benchmark compares with windowFunnel: the home page, then the two top products.
FUNNEL_PAGES = ["/", "/products/item-1", "/products/item-2"]

# name, Tally query (metrics, dimensions, filters, limit), SQL over `events`, kind.
# SQL columns: day, hour, visitor (id per UTC day), page, country, source, browser, os, device,
# entry_page and exit_page (the first and last page of the event's visit), visit_start (1 on a
# visit's first event: exit pages count visits where they start, under the id they start with).
QUERIES = [
    ("totals", ["visitors", "pageviews"], [], [], None,
     "SELECT count(DISTINCT visitor), count(*) FROM events", "unfiltered"),
    ("by day", ["visitors", "pageviews"], ["time:day"], [], None,
     "SELECT day, count(DISTINCT visitor), count(*) FROM events GROUP BY day ORDER BY day", "unfiltered"),
    ("by hour", ["visitors", "pageviews"], ["time:hour"], [], None,
     "SELECT hour, count(DISTINCT visitor), count(*) FROM events GROUP BY hour ORDER BY hour", "unfiltered"),
] + [
    (f"top {name}", ["visitors", "pageviews"], [dim], [], 10,
     f"SELECT {col}, count(DISTINCT visitor) AS v, count(*) FROM events GROUP BY {col} ORDER BY v DESC, {col} LIMIT 10",
     "unfiltered")
    for name, dim, col in [("pages", "event:page", "page"), ("entry pages", "visit:entry_page", "entry_page"),
                           ("sources", "visit:source", "source"),
                           ("countries", "visit:country", "country"), ("devices", "visit:device", "device"),
                           ("browsers", "visit:browser", "browser"), ("OS", "visit:os", "os")]
] + [
    ("top exit pages", ["visitors", "visits"], ["visit:exit_page"], [], 10,
     "SELECT exit_page, count(DISTINCT visitor) AS v, count(*) FROM events WHERE visit_start = 1 "
     "GROUP BY exit_page ORDER BY v DESC, exit_page LIMIT 10", "unfiltered"),
] + [
    ("pages in one country", ["visitors", "pageviews"], ["event:page"], [["is", "visit:country", ["DE"]]], 10,
     "SELECT page, count(DISTINCT visitor) AS v, count(*) FROM events WHERE country = 'DE' "
     "GROUP BY page ORDER BY v DESC, page LIMIT 10", "filtered"),
    ("one filter", ["visitors", "pageviews"], [], [["is", "visit:country", ["DE"]]], None,
     "SELECT count(DISTINCT visitor), count(*) FROM events WHERE country = 'DE'", "filtered"),
    ("two filters", ["visitors", "pageviews"], [], [["is", "visit:country", ["DE"]], ["is", "visit:device", ["Mobile"]]], None,
     "SELECT count(DISTINCT visitor), count(*) FROM events WHERE country = 'DE' AND device = 'Mobile'", "filtered"),
    ("contains filter", ["visitors", "pageviews"], [], [["contains", "event:page", ["item-1"]]], None,
     "SELECT count(DISTINCT visitor), count(*) FROM events WHERE page LIKE '%item-1%'", "filtered"),
]


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


class Tally:
    def __init__(self, binary, data_dir):
        self.binary, self.data_dir = binary, data_dir
        self.server = None

    def run(self, *args, capture=True):
        return subprocess.run([self.binary, *args, "--data-dir", self.data_dir], check=True,
                              capture_output=capture, text=True)

    def start(self):
        self.server = subprocess.Popen([self.binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data_dir],
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.server.stdout.readline().strip()
        host, port = line.removeprefix("listening on http://").rsplit(":", 1)
        self.address = (host, int(port))
        self.reconnect()

    def reconnect(self):
        """A fresh keep-alive connection: the server closes one idle for longer than its header
        timeout (10 s), which the peers' turns between Tally's questions can exceed."""
        self.conn = http.client.HTTPConnection(*self.address)

    def stop(self):
        if self.server:
            self.server.terminate()
            self.server.wait(timeout=60)

    def query(self, key, body, path="/api/v2/query"):
        self.conn.request("POST", path, json.dumps(body),
                          {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        response = self.conn.getresponse()
        text = response.read()
        if response.status != 200:
            raise RuntimeError(f"tally answered {response.status}: {text[:300]}")
        return json.loads(text)


def tally_body(metrics, dims, filters, limit, salt):
    # A different limit per run makes every run a cache miss with the same answer rows.
    body = {"site_id": SITE, "metrics": metrics, "date_range": [FIRST, LAST], "dimensions": dims,
            "filters": filters, "pagination": {"limit": (limit or 5000) + salt}}
    return body


def tally_rows(answer, limit):
    rows = [tuple(r["dimensions"]) + tuple(r["metrics"]) for r in answer["results"]]
    return rows[:limit] if limit else rows


def normalise(rows):
    return [tuple(int(x) if isinstance(x, (int, float)) else str(x) for x in row) for row in rows]


def timed(fn, runs):
    times, result = [], None
    for i in range(runs):
        started = time.perf_counter()
        result = fn(i)
        times.append((time.perf_counter() - started) * 1000)
    return times, result


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--tally", required=True)
    parser.add_argument("--work", required=True, help="directory for the data (kept between runs)")
    parser.add_argument("--out", required=True, help="directory for report.md and report.json")
    args = parser.parse_args()
    import chdb.session
    import duckdb

    os.makedirs(args.work, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    # The generator's format is part of the name: data of an older generator is not reused.
    data = os.path.join(args.work, f"events-{args.events}-v3")
    os.makedirs(data, exist_ok=True)
    if not os.path.exists(os.path.join(data, "done")):
        print(f"generating {args.events} events", file=sys.stderr)
        subprocess.run([sys.executable, os.path.join(HERE, "generate.py"), "--events", str(args.events), "--out", data],
                       check=True)
        open(os.path.join(data, "done"), "w").close()
    events = sum(1 for _ in open(os.path.join(data, "events.ndjson")))

    # Tally: a fresh data directory, the import timed.
    tally_dir = os.path.join(args.work, f"tally-{args.events}")
    subprocess.run(["rm", "-rf", tally_dir], check=True)
    tally = Tally(args.tally, tally_dir)
    tally.run("site", "add", SITE)
    key = tally.run("key", "create", "--site", SITE).stdout.strip()
    started = time.perf_counter()
    tally.run("import", os.path.join(data, "events.ndjson"), "--no-progress")
    import_s = time.perf_counter() - started
    tables = json.loads(tally.run("store-stats").stdout)

    # Peers: Parquet written once by DuckDB, loaded into memory by both.
    parquet = os.path.join(data, "events.parquet")
    duck = duckdb.connect()
    duck.execute(f"COPY (SELECT * FROM read_csv('{data}/events.csv', header=true, types={{'day': 'VARCHAR', 'hour': 'VARCHAR'}})) TO '{parquet}' (FORMAT parquet)")
    duck.execute(f"CREATE TABLE events AS SELECT * FROM read_parquet('{parquet}')")
    ch = chdb.session.Session()
    ch.query("CREATE DATABASE IF NOT EXISTS b")
    ch.query("USE b")
    ch.query(f"CREATE TABLE events ENGINE = Memory AS SELECT * FROM file('{parquet}', Parquet)")

    # Users read their own data: DuckDB over Tally's segment files answers as over the raw events.
    own = os.path.join(tally_dir, "store.segments", SITE, "g1", "*.parquet")
    own_sql = (f"SELECT page, count(DISTINCT visitor_id) FILTER (WHERE events > 0) AS v, sum(pageviews) FROM '{own}' "
               "WHERE country = 'DE' GROUP BY page ORDER BY v DESC, page LIMIT 10")
    raw_sql = ("SELECT page, count(DISTINCT visitor) AS v, count(*) FROM events WHERE country = 'DE' "
               "GROUP BY page ORDER BY v DESC, page LIMIT 10")
    own_same = normalise(duck.execute(own_sql).fetchall()) == normalise(duck.execute(raw_sql).fetchall())
    if not own_same:
        print("DuckDB over Tally's Parquet files answers differently from the raw events", file=sys.stderr)

    # A funnel of three page goals, saved after the import (goals count over all history).
    for page in FUNNEL_PAGES:
        tally.run("goal", "add", "--site", SITE, "--page", page)
    tally.start()
    results = []
    try:
        for name, metrics, dims, filters, limit, sql, kind in QUERIES:
            tally.reconnect()
            miss, answer = timed(lambda i: tally.query(key, tally_body(metrics, dims, filters, limit, i)), args.runs)
            hit, _ = timed(lambda i: tally.query(key, tally_body(metrics, dims, filters, limit, 0)), args.runs)
            d_times, d_rows = timed(lambda i: duck.execute(sql).fetchall(), args.runs)
            c_times, c_out = timed(lambda i: ch.query(sql, "CSV"), args.runs)
            c_rows = [tuple(int(x) if x.lstrip("-").isdigit() else x.strip('"') for x in line.split(","))
                      for line in str(c_out).strip().splitlines() if line]
            t_rows = normalise(tally_rows(answer, limit))
            same = t_rows == normalise(d_rows) == normalise(c_rows)
            tier = answer["meta"].get("tier")
            results.append({
                "query": name, "kind": kind, "tier": tier, "same_answer": same,
                "tally_miss_ms": statistics.median(miss), "tally_miss_p99_ms": percentile(miss, 99),
                "tally_hit_ms": statistics.median(hit), "tally_hit_p99_ms": percentile(hit, 99),
                "duckdb_ms": statistics.median(d_times), "duckdb_p99_ms": percentile(d_times, 99),
                "chdb_ms": statistics.median(c_times), "chdb_p99_ms": percentile(c_times, 99),
                "answer_rows": len(t_rows),
            })
            if not same:
                print(f"DIFFERENT ANSWERS for {name}:\n tally  {t_rows[:5]}\n duckdb {normalise(d_rows)[:5]}\n"
                      f" chdb   {normalise(c_rows)[:5]}", file=sys.stderr)
        funnel = compare_funnel(tally, key, ch, args.runs, strict=False)
        strict_funnel = compare_funnel(tally, key, ch, args.runs, strict=True)
    finally:
        tally.stop()
    for r in results:
        faster = min(r["duckdb_ms"], r["chdb_ms"])
        r["peer_over_tally_miss"] = faster / max(r["tally_miss_ms"], 1e-6)
    tier_bytes = {
        "rollups (tier 1)": tables.get("rollups", 0),
        "segments (tier 2: Parquet files and pending rows)": tables.get("segment_files", 0) + tables.get("segment_pending", 0),
        "visit and sightings state": tables.get("sessions", 0) + tables.get("sightings", 0),
        "event log": tables.get("log_entries", 0),
    }
    report = {"events": events, "runs": args.runs, "import_seconds": import_s,
              "import_events_per_second": events / import_s, "bytes_per_event": {k: v / events for k, v in tier_bytes.items()},
              "parquet_bytes_per_event": os.path.getsize(parquet) / events, "tables": tables, "queries": results,
              "own_parquet_same_answer": own_same, "funnel": funnel, "strict_funnel": strict_funnel}
    with open(os.path.join(args.out, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(markdown(report))
    sys.stdout.write(markdown(report))
    if not all(r["same_answer"] for r in results) or not own_same or not funnel["same_answer"] \
            or not strict_funnel["same_answer"]:
        sys.exit("answers differ between Tally and the peers (see above)")


def compare_funnel(tally, key, ch, runs, strict):
    """POST /api/v2/funnel against ClickHouse's windowFunnel (which Plausible runs) over the same
    events: per visitor id (the generator's `visitor` column is one person in one UTC day, as
    Tally's ids are), the deepest step within 24 hours; with `strict`, in strict order (no other
    event between the steps: windowFunnel's `strict_order`)."""
    steps = [f"Visit {p}" for p in FUNNEL_PAGES]
    body = {"site_id": SITE, "date_range": [FIRST, LAST], "steps": steps, "strict_order": strict}
    times, answer = timed(lambda i: tally.query(key, body, "/api/v2/funnel"), runs)
    conditions = ", ".join(f"page = '{p}'" for p in FUNNEL_PAGES)
    mode = ", 'strict_order'" if strict else ""
    sql = (f"SELECT level, count() FROM (SELECT visitor, windowFunnel(86400{mode})(toDateTime(intDiv(ts_ms, 1000)), "
           f"{conditions}) AS level FROM events GROUP BY visitor) GROUP BY level ORDER BY level")
    c_times, c_out = timed(lambda i: ch.query(sql, "CSV"), runs)
    deepest = {int(a): int(b) for a, b in (line.split(",") for line in str(c_out).strip().splitlines() if line)}
    want = [sum(n for level, n in deepest.items() if level >= k) for k in range(1, len(FUNNEL_PAGES) + 1)]
    got = [s["visitors"] for s in answer["steps"]]
    same = got == want and answer["all_visitors"] == sum(deepest.values())
    if not same:
        print(f"DIFFERENT FUNNELS: tally {got} of {answer['all_visitors']}, chdb {want} of {sum(deepest.values())}",
              file=sys.stderr)
    return {"steps": got, "all_visitors": answer["all_visitors"], "same_answer": same,
            "tally_ms": statistics.median(times), "tally_p99_ms": percentile(times, 99),
            "chdb_ms": statistics.median(c_times), "chdb_p99_ms": percentile(c_times, 99)}


def markdown(report):
    lines = [f"# Query benchmark: {report['events']:,} events, {report['runs']} runs each", "",
             "Medians (p99 in brackets), ms. Tally over HTTP on loopback; DuckDB and chDB in process, tables in memory.",
             "`peer/tally` is the faster peer's median over Tally's cache-miss median (above 1: Tally is faster).", "",
             "| query | tier | Tally miss | Tally hit | DuckDB | chDB | peer/tally | same answer |",
             "|---|---|---|---|---|---|---|---|"]
    for r in report["queries"]:
        lines.append(
            f"| {r['query']} | {r['tier']} | {r['tally_miss_ms']:.2f} ({r['tally_miss_p99_ms']:.2f}) | "
            f"{r['tally_hit_ms']:.2f} ({r['tally_hit_p99_ms']:.2f}) | {r['duckdb_ms']:.2f} ({r['duckdb_p99_ms']:.2f}) | "
            f"{r['chdb_ms']:.2f} ({r['chdb_p99_ms']:.2f}) | {r['peer_over_tally_miss']:.1f}× | "
            f"{'yes' if r['same_answer'] else 'NO'} |")
    lines += ["", f"Import: {report['import_events_per_second']:,.0f} events/s ({report['import_seconds']:.1f} s, "
                  "logging and aggregating both tiers).", "", "| stored | bytes per event |", "|---|---|"]
    for name, b in report["bytes_per_event"].items():
        lines.append(f"| {name} | {b:.1f} |")
    both = sum(b for name, b in report["bytes_per_event"].items() if "tier" in name)
    lines.append(f"| rollups and segments together (the target: at most 40) | {both:.1f} |")
    lines.append(f"| Parquet of the peers' columns (for comparison) | {report['parquet_bytes_per_event']:.1f} |")
    lines += ["", "DuckDB over Tally's own segment files (`store.segments/`) gives the same top pages in one country "
                  f"as over the raw events: {'yes' if report['own_parquet_same_answer'] else 'NO'}."]
    for f, how, mode in [(report["funnel"], "", ""), (report["strict_funnel"], " in strict order", ", 'strict_order'")]:
        lines += ["", f"Funnel of {' → '.join(FUNNEL_PAGES)}{how} over the whole range (visitors per step {f['steps']} of "
                      f"{f['all_visitors']:,}): Tally {f['tally_ms']:.2f} ms ({f['tally_p99_ms']:.2f}), chDB's "
                      f"`windowFunnel(86400{mode})` {f['chdb_ms']:.2f} ms ({f['chdb_p99_ms']:.2f}), "
                      f"{f['chdb_ms'] / max(f['tally_ms'], 1e-6):.1f}×; same answer: {'yes' if f['same_answer'] else 'NO'} "
                      "(DuckDB has no windowFunnel)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
