#!/usr/bin/env python3
"""tests/bench/burst.py: N requests sent at the same moment, one per connection.

    burst.py HOST PORT[,PORT...] N HOST_HEADER PATH COOKIE_HEADER

Opens N connections (at most WINDOW handshakes in flight, so the listen
backlog does not overflow; round robin over the PORTs when several are given,
as a load balancer without stickiness spreads them over replicas), waits
until every one is connected and the server had SETTLE seconds to accept
them, then writes one GET on each of them in a single loop with no await in
between (a few milliseconds for 1,000), and reads every response. wrk cannot do this: it pipelines many requests per
connection and ramps up.

Prints one line on stdout:

    burst N OK200 WALL_MS P50_MS P99_MS NEW_COOKIES STATUSES

OK200: 200 responses whose body is EXPECTED_BODY; WALL_MS: from the first
write to the last complete response; P50_MS, P99_MS: percentiles of each
request's time from the first write to its complete response; NEW_COOKIES: responses that set a new JWT cookie;
STATUSES: every status with its count, e.g. "200:998,401:2" ("err:" counts
connections that failed or timed out). With several PORTs, the statuses per
port go to stderr as well. Exits 2 when not every connection could be opened
(nothing was sent then). Standard library only.
"""

import asyncio
import os
import sys
import time

# Connection handshakes in flight at once, well under the listen backlog (128
# for the gateway's tokio listener). A SYN dropped all the same only delays
# the connect phase (its retry comes a second later), never the burst: the
# requests are written once every connection is up.
WINDOW = 32
SETTLE = 0.5  # seconds for the server to accept the last connections
TIMEOUT = float(os.environ.get("BURST_TIMEOUT", "30"))  # seconds per phase
EXPECTED_BODY = b"hello, world\n"
JWT_COOKIE = os.environ.get("BURST_JWT_COOKIE", "gw_jwt")


async def read_response(reader):
    """(status, body, sets_jwt) of one response with a Content-Length body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length, sets_jwt = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        if name == "content-length":
            length = int(value)
        elif name == "set-cookie":
            # A new JWT, not the clearing of the cookie (empty, Max-Age=0)
            # that a refused refresh answers with.
            cookie_name, _, rest = value.partition("=")
            if (cookie_name.endswith(JWT_COOKIE) and rest.split(";", 1)[0]
                    and "max-age=0" not in rest.lower()):
                sets_jwt = True
    body = await reader.readexactly(length) if length else b""
    return status, body, sets_jwt


async def main():
    host, ports, n, host_hdr, path, cookie = sys.argv[1:7]
    ports, n = [int(p) for p in ports.split(",")], int(n)
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host_hdr}\r\nCookie: {cookie}\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    ).encode()

    window = asyncio.Semaphore(WINDOW)

    async def connect(port):
        async with window:
            return await asyncio.open_connection(host, port)

    # Connection i goes to ports[i % len(ports)], and the requests are
    # written in that order: consecutive requests reach different replicas.
    conns = await asyncio.wait_for(
        asyncio.gather(*(connect(ports[i % len(ports)]) for i in range(n)),
                       return_exceptions=True),
        TIMEOUT,
    )
    failed = [c for c in conns if isinstance(c, BaseException)]
    if failed:
        print(f"burst: {len(failed)} of {n} connections failed: {failed[0]!r}", file=sys.stderr)
        for c in conns:
            if not isinstance(c, BaseException):
                c[1].close()
        sys.exit(2)
    await asyncio.sleep(SETTLE)

    t0 = time.perf_counter()
    for _, writer in conns:
        writer.write(request)  # an empty transport buffer: the send happens here
    sent_ms = (time.perf_counter() - t0) * 1000

    async def one(reader):
        try:
            status, body, sets_jwt = await read_response(reader)
        except (OSError, EOFError, ValueError, IndexError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError):
            return "err", False, False, time.perf_counter()
        return status, status == 200 and body == EXPECTED_BODY, sets_jwt, time.perf_counter()

    async def guarded(reader):
        try:
            return await asyncio.wait_for(one(reader), TIMEOUT)
        except asyncio.TimeoutError:
            return "err", False, False, time.perf_counter()

    results = await asyncio.gather(*(guarded(r) for r, _ in conns))
    for _, writer in conns:
        writer.close()

    ms = sorted((t - t0) * 1000 for *_, t in results)
    statuses = {}
    for status, *_ in results:
        statuses[status] = statuses.get(status, 0) + 1
    ok = sum(1 for _, good, _, _ in results if good)
    if len(ports) > 1:
        for k, port in enumerate(ports):
            mine = {}
            for status, *_ in results[k::len(ports)]:
                mine[status] = mine.get(status, 0) + 1
            print(f"burst: port {port}: " + ",".join(
                f"{s}:{c}" for s, c in sorted(mine.items(), key=lambda kv: str(kv[0]))),
                file=sys.stderr)
    new_cookies = sum(1 for _, _, sets, _ in results if sets)
    print(f"burst: all {n} requests written in {sent_ms:.1f} ms; responses complete at (ms) "
          + ", ".join(f"p{q} {ms[min(len(ms) - 1, len(ms) * q // 100)]:.1f}"
                      for q in (1, 10, 25, 50, 75, 90, 95, 99, 100)), file=sys.stderr)
    print(
        "burst", n, ok, f"{ms[-1]:.1f}", f"{ms[len(ms) // 2]:.1f}", f"{ms[len(ms) * 99 // 100]:.1f}",
        new_cookies,
        ",".join(f"{k}:{v}" for k, v in sorted(statuses.items(), key=lambda kv: str(kv[0]))),
    )


if __name__ == "__main__":
    asyncio.run(main())
