"""An ESC/POS network printer on loopback (a real TCP socket) for the printer tests.

It answers DLE EOT n status queries with ``answers[n]`` (None: silence, as a
printer that is off), keeps every connection's bytes in ``received`` and what
was sent to print (the bytes after the leading status queries) in ``printed``.
"""

from __future__ import annotations

import socket
import threading
import time

QUERY = b"\x10\x04"
OK = b"\x12"
PAPER = {"ok": OK, "out": b"\x72", "near_end": b"\x1e"}


class FakePrinter:
    def __init__(self, answers: dict[int, bytes | None] | None = None, host: str = "127.0.0.1"):
        self.answers = dict(answers) if answers is not None else {1: OK, 2: OK, 4: OK}
        self.received: list[bytes] = []  # one entry per closed connection
        self.printed: list[bytes] = []  # one entry per connection that carried a job
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind((host, 0))
        self.server.listen(8)
        self.server.settimeout(0.1)
        self.port = self.server.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def paper(self, state: str) -> None:
        self.answers[4] = PAPER[state]

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        data = pending = b""
        with conn:
            conn.settimeout(5)
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    break
                if not chunk:
                    break
                data += chunk
                pending += chunk
                while len(pending) >= 3 and pending.startswith(QUERY):
                    answer = self.answers.get(pending[2])
                    pending = pending[3:]
                    if answer is not None:
                        conn.sendall(answer)
                if not pending.startswith(QUERY[: len(pending)]):
                    pending = b""
        self.received.append(data)
        job = data
        while job.startswith(QUERY) and len(job) >= 3:
            job = job[3:]
        if job:
            self.printed.append(job)

    def wait_for_connections(self, n: int) -> list[bytes]:
        deadline = time.monotonic() + 5
        while len(self.received) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.received

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.server.close()
