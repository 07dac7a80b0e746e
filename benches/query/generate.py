#!/usr/bin/env python3
"""Generates a realistic site's traffic, deterministically from a seed.

Writes two files with the same events:
  events.ndjson  what `tally import` reads (ingest fields, timestamp, user agent, visitor key);
  events.csv     the same events with the columns Tally derives (page, source, country, device,
                 browser, OS, visitor id per UTC day), for DuckDB and chDB.

Traffic: visitors with Zipf-distributed countries, browsers and sources, active on one to three
days of the range, one to three visits a day (more than 30 minutes apart), one to eight page
views a visit (seconds to minutes apart), pages Zipf(1.1) over 2,000 paths. Each visitor keeps
one country, user agent and referrer, so visit attributes equal event attributes.
"""
import argparse
import bisect
import csv
import datetime as dt
import itertools
import json
import random

DOMAIN = "shop.example"
START = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
DAY_MS = 86_400_000

# user agent → (browser, OS, device) as Tally classifies it (checked by the benchmark's answers).
AGENTS = [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36", "Chrome", "Windows", "Desktop"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1", "Safari", "iOS", "Mobile"),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36", "Chrome", "Android", "Mobile"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15", "Safari", "macOS", "Desktop"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0", "Firefox", "Windows", "Desktop"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0", "Edge", "Windows", "Desktop"),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", "Firefox", "Linux", "Desktop"),
    ("Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1", "Safari", "iOS", "Tablet"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36", "Chrome", "macOS", "Desktop"),
    ("Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36", "Samsung Internet", "Android", "Mobile"),
]
# referrer → source as Tally names it ("" is no referrer).
REFERRERS = [
    ("", "Direct / None"),
    ("https://www.google.com/", "Google"),
    ("https://www.bing.com/", "Bing"),
    ("https://duckduckgo.com/", "DuckDuckGo"),
    ("https://news.ycombinator.com/", "Hacker News"),
    ("https://www.facebook.com/", "Facebook"),
    ("https://t.co/abc", "X"),
    ("https://www.reddit.com/r/shops/", "Reddit"),
    ("https://blog.partner.example/review", "blog.partner.example"),
    ("https://newsletter.example/issue-12", "newsletter.example"),
]
COUNTRIES = ["US", "DE", "GB", "FR", "IN", "BR", "CA", "NL", "JP", "ES", "IT", "PL", "SE", "AU", "MX",
             "CH", "AT", "BE", "DK", "NO", "FI", "IE", "PT", "CZ", "RO", "HU", "GR", "TR", "KR", "ZA"]


def zipf_picker(rng, n, s):
    weights = [1.0 / (k + 1) ** s for k in range(n)]
    cumulative = list(itertools.accumulate(weights))
    total = cumulative[-1]
    return lambda: bisect.bisect_left(cumulative, rng.random() * total)


def generate(events_wanted, days, seed):
    """Yields (ms, person, page, agent, referrer, country, first_of_visit), unsorted."""
    rng = random.Random(seed)
    page = zipf_picker(rng, 2000, 1.1)
    agent = zipf_picker(rng, len(AGENTS), 1.0)
    referrer = zipf_picker(rng, len(REFERRERS), 1.0)
    country = zipf_picker(rng, len(COUNTRIES), 1.2)
    made, person = 0, 0
    while made < events_wanted:
        person += 1
        who = (agent(), referrer(), country())
        for day in rng.sample(range(days), k=min(days, rng.choice([1, 1, 1, 2, 2, 3]))):
            t = day * DAY_MS + rng.randrange(DAY_MS)
            for _ in range(rng.choice([1, 1, 2, 3])):
                n = min(8, 1 + int(rng.expovariate(0.6)))
                for i in range(n):
                    yield (t, person, page(), who[0], who[1], who[2], i == 0)
                    made += 1
                    t += rng.randrange(5_000, 600_000)
                t += 31 * 60_000 + rng.randrange(4 * 3_600_000)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=".")
    args = parser.parse_args()
    start_ms = int(START.timestamp() * 1000)
    rows = sorted(generate(args.events, args.days, args.seed))
    with open(f"{args.out}/events.ndjson", "w") as nd, open(f"{args.out}/events.csv", "w", newline="") as cs:
        out = csv.writer(cs)
        out.writerow(["ts_ms", "day", "hour", "visitor", "page", "country", "source", "browser", "os", "device", "name",
                      "entry_page", "exit_page", "visit_start"])
        # Each person's visits as analytics defines them: a new visit after 30 minutes without
        # an event; the entry page is the visit's first page, the exit page its last one (all
        # events are page views). A first pass numbers the visits and finds their exits.
        path_of = lambda page: "/" if page == 0 else f"/products/item-{page}"
        last_ms, visit_of, visit_rows, exits = {}, {}, [], []
        for ms, person, page, *_ in rows:
            starts = ms - last_ms.get(person, -10**15) > 30 * 60_000
            if starts:
                visit_of[person] = len(exits)
                exits.append(None)
            last_ms[person] = ms
            exits[visit_of[person]] = path_of(page)
            visit_rows.append(visit_of[person] if not starts else ~visit_of[person])
        entry_of = {}
        for (ms, person, page, agent, ref, country, first), visit in zip(rows, visit_rows):
            ms += start_ms
            ua, browser, os_name, device = AGENTS[agent]
            path = path_of(page)
            starts = visit < 0
            if starts:
                entry_of[person] = path
            event = {"n": "pageview", "u": f"https://{DOMAIN}{path}", "d": DOMAIN, "timestamp": ms,
                     "user_agent": ua, "visitor": f"p{person}", "country": COUNTRIES[country]}
            if first and REFERRERS[ref][0]:
                event["r"] = REFERRERS[ref][0]
            nd.write(json.dumps(event, separators=(",", ":")))
            nd.write("\n")
            utc_day = ms // DAY_MS
            at = dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)
            out.writerow([ms, at.strftime("%Y-%m-%d"), at.strftime("%Y-%m-%d %H:00:00"), f"p{person}-{utc_day}",
                          path, COUNTRIES[country], REFERRERS[ref][1], browser, os_name, device, "pageview",
                          entry_of[person], exits[~visit if starts else visit], int(starts)])

if __name__ == "__main__":
    main()
