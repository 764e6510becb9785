"""An open-loop, constant-rate HTTP/1.1 load generator: POST requests at fixed send times, latency from the schedule.

    python benchmarks/gateway/openloop.py --url http://127.0.0.1:8080/v2/models/m/infer --bodies bodies.json \
        --rate 200 --duration 30 --connections 16 [--header "Authorization: Bearer ..."]

wrk2 (the constant-rate fork of wrk) is not packaged by Debian, and wrk itself is closed-loop: each connection
sends its next request only when the previous answer came, so a slow answer delays the requests behind it and
those delays never appear in its figures ("coordinated omission"). Here request ``i`` is due at ``t0 + i / rate``
whatever happened before; it takes a free keep-alive connection from a fixed pool (waiting for one if all are busy,
which counts) and its latency runs from the *scheduled* time to the last byte of the answer. The time from the
actual send is reported too (``service``), so the generator's own timer lateness can be told apart.

The client is deliberately small (asyncio streams, a hand-written HTTP/1.1 exchange, no parsing beyond the status
line and ``Content-Length``) so that its own cost per request stays in the tens of microseconds. Prints one JSON
object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer


async def _exchange(conn: _Connection, request: bytes) -> int:
    """Send one request and read its whole answer; the status code."""
    conn.writer.write(request)
    head = await conn.reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        lower = line.lower()
        if lower.startswith(b"content-length:"):
            length = int(line[15:].strip())
        elif lower.startswith(b"transfer-encoding:") and b"chunked" in lower:
            chunked = True
    if chunked:
        while True:
            size = int((await conn.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await conn.reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await conn.reader.readexactly(length)
    return status


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    n = len(ordered)

    def at(q: float) -> float:
        return ordered[min(n - 1, max(0, round(q * n + 0.5) - 1))]

    return {
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "p999": at(0.999),
        "max": ordered[-1],
        "mean": sum(ordered) / n,
    }


async def run(
    url: str, bodies: list[bytes], headers: list[str], rate: float, duration: float, connections: int
) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = [f"POST {parts.path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json", *headers]
    prefix = ("\r\n".join(head) + "\r\n").encode()
    requests = [prefix + f"Content-Length: {len(b)}\r\n\r\n".encode() + b for b in bodies]
    pool: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(connections):
        reader, writer = await asyncio.open_connection(host, port)
        pool.put_nowait(_Connection(reader, writer))

    total = int(rate * duration)
    latencies: list[float] = []  # ms, from the scheduled send time
    service: list[float] = []  # ms, from the actual send
    lateness: list[float] = []  # ms, how late the generator sent (timer and pool wait)
    statuses: dict[int, int] = {}
    errors = 0
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int, due: float) -> None:
        nonlocal errors
        conn = await pool.get()
        sent = time.perf_counter()
        try:
            status = await _exchange(conn, requests[i % len(requests)])
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            reader, writer = await asyncio.open_connection(host, port)
            conn = _Connection(reader, writer)
            status = 0
        done = time.perf_counter()
        pool.put_nowait(conn)
        statuses[status] = statuses.get(status, 0) + 1
        latencies.append((done - due) * 1000.0)
        service.append((done - sent) * 1000.0)
        lateness.append((sent - due) * 1000.0)

    t0 = time.perf_counter() + 0.05
    for i in range(total):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(i, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    while not pool.empty():
        pool.get_nowait().writer.close()
    return {
        "rate": rate,
        "duration_s": duration,
        "connections": connections,
        "sent": total,
        "achieved_rate": total / elapsed,
        "errors": errors,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "latency_ms": _percentiles(latencies),
        "service_ms": _percentiles(service),
        "send_lateness_ms": _percentiles(lateness),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--bodies", required=True, help="a JSON file holding a list of request bodies (strings)")
    parser.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    with open(args.bodies, encoding="utf-8") as fh:
        bodies = [b.encode() for b in json.load(fh)]
    result = asyncio.run(run(args.url, bodies, args.header, args.rate, args.duration, args.connections))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
