#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The fault-injecting proxy against a real echo server on loopback: pass, delay, blackhole
(held, then delivered when healed; reset after a timeout) and cut (closed and refused)."""

import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proxy import Hub  # noqa: E402


class EchoServer:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    def _echo(self, c):
        with c:
            while True:
                try:
                    data = c.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                c.sendall(data)


class ProxyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.echo = EchoServer()
        cls.hub = Hub()

    @classmethod
    def tearDownClass(cls):
        cls.hub.close()
        cls.echo.sock.close()

    def setUp(self):
        self.p = self.hub.proxy(self.echo.port, "t")

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.p.port), timeout=5)

    def roundtrip(self, s, data=b"ping"):
        t = time.monotonic()
        s.sendall(data)
        got = b""
        while len(got) < len(data):
            chunk = s.recv(100)
            if not chunk:
                raise ConnectionError("closed")
            got += chunk
        self.assertEqual(got, data)
        return time.monotonic() - t

    def test_pass_and_delay(self):
        with self.connect() as s:
            self.assertLess(self.roundtrip(s), 0.2)
            self.p.set_delay(150)
            rt = self.roundtrip(s)
            self.assertGreaterEqual(rt, 0.3)  # 150 ms each way
            self.assertLess(rt, 1.5)
            self.p.set_pass()
            self.assertLess(self.roundtrip(s), 0.2)

    def test_blackhole_holds_bytes_until_healed(self):
        with self.connect() as s:
            self.roundtrip(s)
            self.p.set_blackhole()
            s.sendall(b"held")
            s.settimeout(0.5)
            self.assertRaises(socket.timeout, s.recv, 100)
            with self.connect() as s2:  # a connect during the partition: accepted, stalled
                s2.settimeout(0.3)
                s2.sendall(b"x")
                self.assertRaises(socket.timeout, s2.recv, 100)
                self.p.set_pass()
                s2.settimeout(5)
                self.assertEqual(s2.recv(100), b"x")
            s.settimeout(5)
            self.assertEqual(s.recv(100), b"held")

    def test_blackhole_resets_connections_after_the_timeout(self):
        with self.connect() as s:
            self.roundtrip(s)
            self.p.set_blackhole(reset_after=0.5)
            s.sendall(b"lost")
            s.settimeout(5)
            t = time.monotonic()
            try:
                self.assertEqual(s.recv(100), b"")
            except ConnectionResetError:
                pass
            self.assertGreaterEqual(time.monotonic() - t, 0.4)
            self.p.set_pass()
        with self.connect() as s:
            self.roundtrip(s)

    def test_cut_closes_and_refuses_then_comes_back_on_the_same_port(self):
        port = self.p.port
        s = self.connect()
        self.roundtrip(s)
        self.p.set_cut()
        s.settimeout(5)
        try:
            self.assertEqual(s.recv(100), b"")
        except ConnectionResetError:
            pass
        s.close()
        self.assertRaises(ConnectionRefusedError, self.connect)
        self.p.set_pass()
        self.assertEqual(self.p.port, port)
        with self.connect() as s:
            self.roundtrip(s)

    def test_a_fault_on_one_proxy_leaves_another_alone(self):
        other = self.hub.proxy(self.echo.port, "other")
        self.p.set_cut()
        with socket.create_connection(("127.0.0.1", other.port), timeout=5) as s:
            self.roundtrip(s)
        self.p.set_pass()


if __name__ == "__main__":
    unittest.main(verbosity=2)
