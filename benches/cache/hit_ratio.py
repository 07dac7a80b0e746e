#!/usr/bin/env python3
"""The answer cache under live ingest: the hit ratio of repeated dashboard loads while events
keep arriving, and whether every answer is right.

Imports a month of generated history (benches/query/generate.py, October 2026) into a fresh data
directory, starts `tally serve`, and then, for --seconds, keeps live events arriving for today
(--rate a second) while --users dashboards reload in a loop (--interval seconds apart): half of them the
11 questions of a dashboard over the closed days of October, half over today ("day"). Reports
the share of answers served from the cache (meta.cache) per kind of dashboard and in all, with
/api/health's own count, and checks the answers: every closed-days answer equals the first one
(the days did not change), and today's page views never go down and reach every event sent.

    hit_ratio.py --tally target/release/tally [--events 200000] [--seconds 30] [--rate 200]
                 [--users 4] [--interval 0]
"""
import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SITE = "shop.example"
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
# The dashboard's questions: (metrics, dimensions, limit).
DASHBOARD = [
    (["visitors", "visits", "pageviews", "bounce_rate", "visit_duration"], [], None),
    (["visitors", "pageviews"], ["time"], None),
    (["visitors", "visits"], ["event:page"], 10),
    (["visitors"], ["visit:entry_page"], 10),
    (["visitors"], ["visit:exit_page"], 10),
    (["visitors"], ["visit:source"], 10),
    (["visitors"], ["visit:country"], 10),
    (["visitors"], ["visit:device"], 10),
    (["visitors"], ["visit:browser"], 10),
    (["visitors"], ["visit:os"], 10),
    (["visitors", "events"], ["event:name"], 10),
]


def tally(binary, data, *args):
    return subprocess.run([binary, *args, "--data-dir", data], check=True, capture_output=True, text=True).stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tally", required=True)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=int, default=200, help="live events a second")
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--interval", type=float, default=0.0, help="seconds each user waits between loads")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="tally-cache-bench-")
    data = os.path.join(work, "data")
    subprocess.run([sys.executable, os.path.join(HERE, "../query/generate.py"), "--events", str(args.events),
                    "--out", work], check=True, capture_output=True)
    tally(args.tally, data, "site", "add", SITE)
    tally(args.tally, data, "import", os.path.join(work, "events.ndjson"), "--no-progress")
    key = tally(args.tally, data, "key", "create", "--site", SITE).strip()
    server = subprocess.Popen([args.tally, "serve", "--listen", "127.0.0.1:0", "--data-dir", data,
                               "--ingest-rate-per-client", "0", "--query-rate-per-hour", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    host, port = server.stdout.readline().strip().removeprefix("listening on http://").rsplit(":", 1)
    port = int(port)
    stop = threading.Event()
    sent = [0]
    failures = []

    def live():
        conn = http.client.HTTPConnection(host, port)
        n = 0
        next_at = time.monotonic()
        while not stop.is_set():
            batch = [{"n": "pageview", "u": f"https://{SITE}/live/{n % 50}", "d": SITE} for _ in range(10)]
            conn.request("POST", "/api/event", json.dumps(batch),
                         {"User-Agent": UA, "Content-Type": "text/plain"})
            response = conn.getresponse()
            response.read()
            if response.status != 202:
                failures.append(f"ingest answered {response.status}")
            n += 1
            sent[0] += len(batch)
            next_at += len(batch) / args.rate
            time.sleep(max(0.0, next_at - time.monotonic()))

    counts = {"closed": [0, 0], "today": [0, 0]}
    first = {}
    last_today = [0]
    lock = threading.Lock()

    def user(kind):
        conn = http.client.HTTPConnection(host, port)
        date_range = ["2026-10-01", "2026-10-31"] if kind == "closed" else "day"
        while not stop.is_set():
            for i, (metrics, dimensions, limit) in enumerate(DASHBOARD):
                body = {"site_id": SITE, "metrics": metrics, "dimensions": dimensions, "date_range": date_range}
                if limit:
                    body["pagination"] = {"limit": limit}
                conn.request("POST", "/api/v2/query", json.dumps(body),
                             {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
                response = conn.getresponse()
                answer = json.loads(response.read())
                if response.status != 200:
                    failures.append(f"{body} answered {response.status}: {answer}")
                    continue
                with lock:
                    counts[kind][0 if answer["meta"]["cache"] == "hit" else 1] += 1
                    if kind == "closed":
                        if first.setdefault(i, answer["results"]) != answer["results"]:
                            failures.append(f"closed days changed: {body}")
                    elif i == 0:
                        pageviews = answer["results"][0]["metrics"][2]
                        if pageviews < last_today[0]:
                            failures.append(f"today's page views went down: {pageviews} < {last_today[0]}")
                        last_today[0] = max(last_today[0], pageviews)
            stop.wait(args.interval)

    threads = [threading.Thread(target=live)]
    threads += [threading.Thread(target=user, args=("closed" if u % 2 == 0 else "today",)) for u in range(args.users)]
    for t in threads:
        t.start()
    time.sleep(args.seconds)
    stop.set()
    for t in threads:
        t.join()
    # Every event sent shows in today's page views within a few seconds.
    deadline = time.monotonic() + 10
    conn = http.client.HTTPConnection(host, port)
    body = {"site_id": SITE, "metrics": ["pageviews"], "date_range": "day"}
    while True:
        conn.request("POST", "/api/v2/query", json.dumps(body), {"Authorization": f"Bearer {key}"})
        pageviews = json.loads(conn.getresponse().read())["results"][0]["metrics"][0]
        if pageviews == sent[0] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if pageviews != sent[0]:
        failures.append(f"today shows {pageviews} page views of {sent[0]} sent")
    conn.request("GET", "/api/health")
    health = json.loads(conn.getresponse().read())["query_cache"]
    server.terminate()
    server.wait()

    def ratio(hit, miss):
        return f"{hit / (hit + miss):.3f} ({hit} of {hit + miss})" if hit + miss else "n/a"

    print(f"live events: {sent[0]} in {args.seconds:.0f} s ({sent[0] / args.seconds:.0f}/s); history: {args.events} events")
    print(f"closed-days dashboards (October): hit ratio {ratio(*counts['closed'])}")
    print(f"today's dashboards: hit ratio {ratio(*counts['today'])}")
    total = [counts["closed"][0] + counts["today"][0], counts["closed"][1] + counts["today"][1]]
    print(f"all: hit ratio {ratio(*total)}; /api/health: hits {health['hits']}, misses {health['misses']}, "
          f"{health['entries']} entries, {health['bytes']} bytes")
    print(f"answers checked: {'all right' if not failures else f'{len(failures)} wrong'}")
    for failure in failures[:10]:
        print("  " + failure)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
