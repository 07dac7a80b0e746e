#!/usr/bin/env python3
"""Writes the seed inputs of the `ingest` fuzz target into seeds/ingest/.

A seed is not a bare JSON body: it is the byte layout that `arbitrary` (1.x) decodes into the
target's `Input` struct. Fixed-size fields come first, string contents follow in field order,
then the body; the strings' lengths are read from the END of the input (last byte first).
Check a seed with `cargo fuzz fmt ingest seeds/ingest/<file>`.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "ingest")


def variant(index, count):
    # derive(Arbitrary) picks variant (u32_le * count) >> 32.
    return struct.pack("<I", -(-(index << 32) // count))


def length_bytes(size, remaining):
    # Unstructured::arbitrary_byte_size: 1 byte if remaining <= 256, else 2 (big-endian), mod range.
    if remaining <= 256:
        assert size < remaining
        return bytes([size])
    assert remaining <= 65537 and size <= remaining - 2
    return struct.pack(">H", size)


def seed(body, user_agent, content_type="application/json", country="DE", ipv4=0x0A0B0C0D,
         sites=0, received_ms=1_764_370_000_000, first_event_id=1):
    strings = [(content_type, True), (user_agent, False), (country, True)]
    front = variant(0, 2) + struct.pack("<I", ipv4) + struct.pack("<q", received_ms)
    front += struct.pack("<QQ", first_event_id & (2**64 - 1), first_event_id >> 64) + variant(sites, 3)
    # Lengths depend on how much is left when each is read, which depends on the lengths'
    # own widths: try widths until they are consistent.
    for widths in ([1, 1, 1], [2, 2, 2], [2, 2, 1], [2, 1, 1]):
        payload, tail, consumed_front, i = b"", b"", len(front), 0
        total = len(front) + sum(1 + len(s.encode()) for s, opt in strings if opt and s is not None)
        total += sum(len(s.encode()) for s, opt in strings if not opt) + len(body)
        n_lengths = sum(1 for s, _ in strings if s is not None)
        total += sum(widths[:n_lengths])
        remaining, ok = total - len(front), True
        for value, optional in strings:
            if optional:
                payload += bytes([1 if value is not None else 0])
                remaining -= 1
                if value is None:
                    continue
            raw = value.encode()
            width = 1 if remaining <= 256 else 2
            if width != widths[i]:
                ok = False
                break
            tail = length_bytes(len(raw), remaining) + tail
            remaining -= width
            payload += raw
            remaining -= len(raw)
            i += 1
        if ok:
            return front + payload + body + tail
    raise ValueError("no consistent length widths")


CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
          "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36")
SEEDS = {
    "pageview": seed(b'{"name":"pageview","url":"https://a.com/blog/?utm_source=news","domain":"a.com","referrer":"https://www.google.com/"}', CHROME),
    "short_keys": seed(b'{"n":"signup","u":"https://example.com/x?ref=hn","d":"www.Example.com.","r":"https://news.ycombinator.com/","p":"{\\"plan\\":\\"pro\\",\\"n\\":2}","$":{"amount":"12.50","currency":"eur"},"i":false}', CHROME, content_type="text/plain;charset=UTF-8", sites=2),
    "batch": seed(b'[{"n":"pageview","u":"http://localhost:8080/a/","d":"localhost"},{"n":"x","u":"/","d":"a.com","props":{"k":[1]}},7,{"n":"pageview","u":"https://b.org/","d":"b.org"}]', "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1", country=None, sites=2),
    "bot": seed(b'{"name":"pageview","url":"https://a.com/","domain":"a.com"}', "Googlebot/2.1 (+http://www.google.com/bot.html)", content_type=None),
    "rejected": seed(b'{"name":"pageview","url":"https://a.com/","domain":"a.com"', "curl/8.5.0", content_type="application/x-www-form-urlencoded", sites=1),
}

if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
