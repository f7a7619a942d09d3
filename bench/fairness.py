"""Same-address fairness probe: a client opens idle connections (they never send a request) from
127.0.0.1 at a steady rate and holds each until the server closes it, while a scraper on the same
address, and a control scraper on 127.0.0.2, each make one GET per interval on a new connection.
Prints "<ok from 127.0.0.1> <ok from 127.0.0.2> <idle connections open at the end>" (open as the
client sees them: connections a server has not accepted yet, in its listen backlog, count).

    python3 bench/fairness.py PORT PATH [--rate 20] [--scrapes 100] [--interval 0.1] [--warmup 8]
    python3 bench/fairness.py PORT PATH --tls --reconnecting 64 [--health-every 5] ...

With --tls every connection is TLS (the certificate is not checked). With --reconnecting N the flood
is the third audit's instead: N connections from 127.0.0.1, each sending GET /health every
--health-every seconds (so they count as served) and opening a new one at once when closed.
"""

import argparse
import asyncio
import ssl

TLS = None


def tls_context():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def connect(port, source):
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0), ssl=TLS)


async def hold_idle(port, held):
    try:
        reader, writer = await connect(port, "127.0.0.1")
    except OSError:
        return
    held.add(writer)
    try:
        await reader.read(1)  # returns when the server closes (or answers, which it never should)
    except OSError:
        pass
    finally:
        held.discard(writer)
        writer.close()


async def flood(port, rate, held, stop):
    tasks = set()
    while not stop.is_set():
        task = asyncio.ensure_future(hold_idle(port, held))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        await asyncio.sleep(1 / rate)
    for task in tasks:
        task.cancel()


async def served_connection(port, every, held, stop):
    """One of the audit's connections: GET /health every `every` seconds, reconnecting at once."""
    while not stop.is_set():
        try:
            reader, writer = await connect(port, "127.0.0.1")
        except OSError:
            await asyncio.sleep(0.01)
            continue
        held.add(writer)
        try:
            while not stop.is_set():
                writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                await writer.drain()
                status = await reader.readline()
                if not status:
                    break
                # The small answer: headers, then its body by Content-Length.
                length = 0
                while True:
                    line = await reader.readline()
                    if not line or line == b"\r\n":
                        break
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                try:
                    await asyncio.wait_for(reader.read(1), every)
                    break  # the server closed it (or sent something unexpected)
                except asyncio.TimeoutError:
                    pass
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            held.discard(writer)
            writer.close()


async def served_flood(port, count, every, held, stop):
    await asyncio.gather(*(served_connection(port, every, held, stop) for _ in range(count)))


async def scrape_once(port, path, source):
    try:
        reader, writer = await asyncio.wait_for(
            connect(port, source),
            2,
        )
    except (OSError, asyncio.TimeoutError):
        return False
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 2)
        ok = status.startswith(b"HTTP/1.1 200") or status.startswith(b"HTTP/1.0 200")
        if ok:
            await asyncio.wait_for(reader.read(), 5)
        return ok
    except (OSError, asyncio.TimeoutError):
        return False
    finally:
        writer.close()


async def scraper(port, path, source, scrapes, interval):
    ok = 0
    for _ in range(scrapes):
        ok += await scrape_once(port, path, source)
        await asyncio.sleep(interval)
    return ok


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("path")
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--scrapes", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--warmup", type=float, default=8)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--reconnecting", type=int, default=0)
    parser.add_argument("--health-every", type=float, default=5)
    args = parser.parse_args()
    global TLS
    TLS = tls_context() if args.tls else None
    held, stop = set(), asyncio.Event()
    if args.reconnecting:
        flooding = asyncio.ensure_future(
            served_flood(args.port, args.reconnecting, args.health_every, held, stop))
    else:
        flooding = asyncio.ensure_future(flood(args.port, args.rate, held, stop))
    await asyncio.sleep(args.warmup)  # let the idle connections fill the server's table
    same, other = await asyncio.gather(
        scraper(args.port, args.path, "127.0.0.1", args.scrapes, args.interval),
        scraper(args.port, args.path, "127.0.0.2", args.scrapes, args.interval),
    )
    open_at_end = len(held)
    stop.set()
    await flooding
    print(same, other, open_at_end)


asyncio.run(main())
