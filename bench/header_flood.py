"""The audit's header probe: CONNECTIONS connections spread over ADDRESSES loopback addresses
(127.0.0.1, 127.0.0.2, ...), each sending a request whose headers never end (up to BYTES of one
header line), then holding the connection until the server closes it or HOLD seconds pass.
Prints "<connections opened> <closed by the server>".

    python3 bench/header_flood.py PORT [--connections 576] [--addresses 9] [--bytes 399000] [--hold 5]
"""

import argparse
import asyncio


async def probe(port, source, size, hold):
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    except OSError:
        return (False, False)
    try:
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: exporter\r\nX-Padding: ")
        chunk = b"a" * 16384
        sent = 0
        while sent < size:
            writer.write(chunk)
            await asyncio.wait_for(writer.drain(), hold)
            sent += len(chunk)
        # Headers never finished: wait for the server to give up on them.
        data = await asyncio.wait_for(reader.read(), hold)
        return (True, True) if data is not None else (True, False)
    except (OSError, asyncio.TimeoutError, ConnectionError):
        return (True, True)
    finally:
        writer.close()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--connections", type=int, default=576)
    parser.add_argument("--addresses", type=int, default=9)
    parser.add_argument("--bytes", type=int, default=399000)
    parser.add_argument("--hold", type=float, default=5)
    args = parser.parse_args()
    results = await asyncio.gather(
        *(
            probe(args.port, f"127.0.0.{1 + i % args.addresses}", args.bytes, args.hold)
            for i in range(args.connections)
        )
    )
    print(sum(opened for opened, _ in results), sum(closed for _, closed in results))


asyncio.run(main())
