#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A small fault-injecting TCP proxy for the fault suite: one listener on loopback per
(node, backend server), so that a fault on one proxy affects one node only.

Modes (switched at any time, thread-safe, from the driver):

* pass           bytes flow (after `delay` ms, if set: slow network).
* delay MS       every chunk is delivered MS ms after it arrived, in both directions, in order.
* blackhole      connections are accepted and kept, but nothing gets through in either
                 direction — like a partition: bytes (and a close) wait as TCP would
                 retransmit them, and get through if the partition heals in time. A connection
                 made during the partition reaches the server only after it heals. With
                 `reset_after` seconds, connections that stayed blackholed that long are
                 closed on both sides, as the two ends' TCP timeouts would (PostgreSQL's
                 tcp_user_timeout, keepalives) — set it to the ttl.
* cut            every connection is closed (RST) and new ones are refused (the listener is
                 closed; it comes back on the same port when the mode changes).

Standalone: `proxy.py LISTEN_PORT UPSTREAM_PORT`, then type `pass`, `delay 300`, `blackhole`,
`cut` on stdin."""

import asyncio
import socket
import sys
import threading
import time


class Hub:
    """One asyncio loop in a daemon thread, serving any number of proxies."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fault-proxies",
                                       daemon=True)
        self.thread.start()
        self.proxies = []

    def call(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def proxy(self, upstream_port, name="", listen_port=0, upstream_host="127.0.0.1"):
        p = Proxy(self, upstream_host, upstream_port, name, listen_port)
        self.call(p._listen())
        self.proxies.append(p)
        return p

    def close(self):
        for p in self.proxies:
            try:
                self.call(p._close_all(listener=True))
            except Exception:
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class _Conn:
    def __init__(self, proxy, reader, writer):
        self.proxy = proxy
        self.client_r, self.client_w = reader, writer
        self.up_r = self.up_w = None
        self.tasks = []
        self.closed = False

    async def run(self):
        p = self.proxy
        to_up, to_client = asyncio.Queue(), asyncio.Queue()
        self.tasks = [asyncio.ensure_future(self._read(self.client_r, to_up)),
                      asyncio.ensure_future(self._write_up(to_up)),
                      asyncio.ensure_future(self._write(to_client, lambda: self.client_w))]
        try:
            await p._gate()  # a connection made during a partition waits for it to heal
            if self.closed:
                return
            self.up_r, self.up_w = await asyncio.wait_for(
                asyncio.open_connection(p.upstream_host, p.upstream_port), 5)
            self.tasks.append(asyncio.ensure_future(self._read(self.up_r, to_client)))
            self.ready.set()
            await asyncio.gather(*self.tasks)
        except (OSError, asyncio.TimeoutError, asyncio.CancelledError):
            pass
        finally:
            self.abort()

    async def _read(self, reader, queue):
        while True:
            data = await reader.read(65536)
            await queue.put((time.monotonic(), data))
            if not data:
                return

    async def _write_up(self, queue):
        await self.ready.wait()
        await self._write(queue, lambda: self.up_w)

    async def _write(self, queue, writer):
        while True:
            arrived, data = await queue.get()
            await self.proxy._gate()
            wait = arrived + self.proxy.delay - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self.proxy._gate()
            if not data:
                self.abort(graceful=True)
                return
            w = writer()
            w.write(data)
            await w.drain()

    def abort(self, graceful=False):
        if self.closed:
            return
        self.closed = True
        for w in (self.client_w, self.up_w):
            if w is None:
                continue
            try:
                if graceful:
                    w.close()
                else:
                    w.transport.abort()
            except Exception:
                pass
        me = asyncio.current_task()
        for t in self.tasks:
            if t is not me:
                t.cancel()
        self.proxy.conns.discard(self)


class Proxy:
    def __init__(self, hub, upstream_host, upstream_port, name, listen_port):
        self.hub = hub
        self.upstream_host, self.upstream_port = upstream_host, upstream_port
        self.name = name
        self.port = listen_port
        self.server = None
        self.conns = set()
        self.mode = "pass"
        self.delay = 0.0
        self.reset_after = None
        self._open = None  # asyncio.Event: set when bytes may flow
        self._reset_task = None

    def __repr__(self):
        return "Proxy(%s :%d→:%d %s%s)" % (self.name, self.port, self.upstream_port, self.mode,
                                          " +%dms" % (self.delay * 1000) if self.delay else "")

    # -- the driver's side (any thread) --------------------------------------------------------
    def set_pass(self):
        self.hub.call(self._set("pass", 0.0))

    def set_delay(self, ms):
        self.hub.call(self._set("pass", ms / 1000.0))

    def set_blackhole(self, reset_after=None):
        self.reset_after = reset_after
        self.hub.call(self._set("blackhole", self.delay))

    def set_cut(self):
        self.hub.call(self._set("cut", self.delay))

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    # -- the loop's side ------------------------------------------------------------------------
    async def _listen(self):
        if self._open is None:
            self._open = asyncio.Event()
            self._open.set()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self.server = await asyncio.start_server(self._accept, sock=sock)

    async def _accept(self, reader, writer):
        conn = _Conn(self, reader, writer)
        conn.ready = asyncio.Event()
        self.conns.add(conn)
        await conn.run()

    async def _gate(self):
        await self._open.wait()

    async def _close_all(self, listener):
        for c in list(self.conns):
            c.abort()
        if listener and self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def _set(self, mode, delay):
        old = self.mode
        self.mode, self.delay = mode, delay
        if self._reset_task is not None:
            self._reset_task.cancel()
            self._reset_task = None
        if mode == "pass":
            if old == "cut":
                await self._listen()
            self._open.set()
        elif mode == "blackhole":
            if old == "cut":
                await self._listen()
            self._open.clear()
            if self.reset_after:
                self._reset_task = asyncio.ensure_future(self._reset_later(self.reset_after))
        elif mode == "cut":
            self._open.set()
            await self._close_all(listener=True)

    async def _reset_later(self, after):
        """Closes the connections that stayed blackholed `after` seconds (TCP timeouts)."""
        await asyncio.sleep(after)
        if self.mode == "blackhole":
            await self._close_all(listener=False)


def main():
    listen, upstream = int(sys.argv[1]), int(sys.argv[2])
    hub = Hub()
    p = hub.proxy(upstream, "cli", listen)
    print(p, flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "pass":
            p.set_pass()
        elif words[0] == "delay":
            p.set_delay(float(words[1]))
        elif words[0] == "blackhole":
            p.set_blackhole(float(words[1]) if len(words) > 1 else None)
        elif words[0] == "cut":
            p.set_cut()
        print(p, flush=True)
    hub.close()


if __name__ == "__main__":
    main()
