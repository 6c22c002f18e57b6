#!/usr/bin/env python3
"""Opens N idle keep-alive TLS connections to a proxy and holds them.

Each connection completes a TLS handshake (ALPN http/1.1, certificate
verified against the bench CA), sends one `GET PATH` and reads the whole
response, so the proxy holds a live HTTP/1.1 keep-alive connection, then
goes quiet. When all are open it prints `OPEN <ok> <failed>` and holds until
a line (or EOF) arrives on stdin, or HOLD_MAX seconds pass; then it closes
everything and exits.

Usage: idle_conns.py HOST PORT CAFILE PATH N
"""
import asyncio
import ssl
import sys
import threading

HOLD_MAX = 60.0
PARALLEL = 32


async def open_one(host, port, ctx, path, sem, conns):
    async with sem:
        try:
            r, w = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=ctx, server_hostname=host), 20
            )
            w.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 20)
            length = 0
            for line in head.decode("latin-1").split("\r\n")[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v.strip())
            if length:
                await asyncio.wait_for(r.readexactly(length), 20)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head.split(b"\r\n", 1)[0].decode("latin-1"))
            conns.append(w)
            return True
        except Exception as e:  # counted, reported once
            print(f"idle_conns: {type(e).__name__}: {e}", file=sys.stderr)
            return False


async def main():
    host, port, cafile, path, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.set_alpn_protocols(["http/1.1"])
    sem = asyncio.Semaphore(PARALLEL)
    conns = []
    results = await asyncio.gather(*(open_one(host, port, ctx, path, sem, conns) for _ in range(n)))
    ok = sum(results)
    print(f"OPEN {ok} {n - ok}", flush=True)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def wait_stdin():
        sys.stdin.readline()
        loop.call_soon_threadsafe(done.set)

    threading.Thread(target=wait_stdin, daemon=True).start()
    try:
        await asyncio.wait_for(done.wait(), HOLD_MAX)
    except asyncio.TimeoutError:
        pass
    for w in conns:
        w.close()
    await asyncio.gather(*(w.wait_closed() for w in conns), return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
