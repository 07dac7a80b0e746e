#!/usr/bin/env python3
"""Freshness under load: how long after its 202 an event is visible in tally serve's answers.

While wrk loads the server (benches/load/run.sh), this sends a probe pageview every 250 ms, each
to a page of its own (`/probe/N`) from a visitor of its own, and polls every 50 ms with two
queries: one unfiltered (`event:page` by day: the rollups) and one filtered to the probe pages
(the segments). A probe is visible in a tier once that tier's answer counts it. Prints p50, p99
and max of the 202-to-visible times per tier, and exits 1 if a probe never became visible.
Standard library only.
"""
import argparse
import json
import statistics
import threading
import time
import urllib.error
import urllib.request


def post(url, body, headers):
    """The status and body text of a POST (an error status is returned, not raised)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--addr", required=True, help="http://host:port of tally serve")
    parser.add_argument("--key", required=True)
    parser.add_argument("--site", default="bench.example")
    parser.add_argument("--seconds", type=float, required=True, help="how long to send probes")
    parser.add_argument("--give-up", type=float, default=30.0, help="seconds after which a probe counts as lost")
    args = parser.parse_args()
    sent = {}  # page -> time of its 202
    seen = {"rollups": {}, "segments": {}}
    lock = threading.Lock()
    done = threading.Event()

    def send():
        try:
            send_probes()
        finally:
            done.set()

    def send_probes():
        n = 0
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            page = f"/probe/{n}"
            headers = {"Content-Type": "application/json", "X-Forwarded-For": f"192.168.{n // 256 % 256}.{n % 256}",
                       "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                                     "Chrome/120.0.0.0 Safari/537.36"}
            body = {"name": "pageview", "url": f"https://{args.site}{page}", "domain": args.site}
            status, _ = post(f"{args.addr}/api/event", body, headers)
            if status == 202:
                with lock:
                    sent[page] = time.monotonic()
            n += 1
            time.sleep(0.25)

    def counted(answer):
        return {r["dimensions"][0] for r in answer["results"] if r["metrics"][0] > 0}

    auth = {"Authorization": f"Bearer {args.key}", "Content-Type": "application/json"}
    sender = threading.Thread(target=send)
    sender.start()
    while True:
        with lock:
            waiting = [p for p in sent if p not in seen["rollups"] or p not in seen["segments"]]
        now = time.monotonic()
        if done.is_set() and (not waiting or all(now - sent[p] > args.give_up for p in waiting)):
            break
        if waiting:
            # A filter takes at most 100 values (README, Query limits); older probes come first.
            queries = {
                "rollups": {"site_id": args.site, "metrics": ["pageviews"], "date_range": "day",
                            "dimensions": ["event:page"]},
                "segments": {"site_id": args.site, "metrics": ["pageviews"], "date_range": "day",
                             "dimensions": ["event:page"], "filters": [["is", "event:page", waiting[:100]]]},
            }
            for tier, body in queries.items():
                status, text = post(f"{args.addr}/api/v2/query", body, auth)
                at = time.monotonic()
                if status == 200:
                    for page in counted(json.loads(text)) & set(waiting):
                        seen[tier].setdefault(page, at)
        time.sleep(0.05)
    sender.join()
    lost = 0
    for tier in ("rollups", "segments"):
        latencies = [seen[tier][p] - sent[p] for p in sent if p in seen[tier]]
        missing = len(sent) - len(latencies)
        lost += missing
        if latencies:
            print(f"202 to visible ({tier}, {len(latencies)} probes): p50 {statistics.median(latencies):.2f} s, "
                  f"p99 {percentile(latencies, 99):.2f} s, max {max(latencies):.2f} s"
                  + (f"; {missing} never visible" if missing else ""))
        else:
            print(f"202 to visible ({tier}): no probe became visible")
    raise SystemExit(1 if lost else 0)


if __name__ == "__main__":
    main()
