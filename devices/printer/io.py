"""Talking to a real receipt printer: status queries and raw byte delivery.

Why our own DLE EOT code: python-escpos 3.1's ``paper_status()`` returns 2
("paper adequate") when the printer sends no answer at all, and
``is_online()`` cannot tell "offline" from "did not answer".  A dead printer
must never look healthy, so here any missing or malformed answer is
"unknown".
"""

from __future__ import annotations

import enum
import os
import select
import socket
import time
from typing import Callable

__all__ = ["PrinterStatus", "query_status", "NetworkPrinter", "FilePrinter", "SerialPrinter"]


class PrinterStatus(enum.StrEnum):
    OK = "ok"
    PAPER_NEAR_END = "paper_near_end"
    PAPER_OUT = "paper_out"
    COVER_OPEN = "cover_open"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


# DLE EOT n real-time status requests; each is answered with one byte.
QUERY_PRINTER = b"\x10\x04\x01"  # bit 3 (0x08): offline
QUERY_OFFLINE_CAUSE = b"\x10\x04\x02"  # bit 2 (0x04): cover open
QUERY_PAPER = b"\x10\x04\x04"  # bits 2-3 (0x0C): near end, bits 5-6 (0x60): out

# Every status byte has bit 1 and bit 4 set and bits 0 and 7 clear; anything
# else is not an answer to our query (noise, an echo, a non-ESC/POS device).
_FIXED_MASK, _FIXED_BITS = 0x93, 0x12


def query_status(send_and_receive: Callable[[bytes], bytes | None]) -> PrinterStatus:
    """Run the three DLE EOT queries through ``send_and_receive``.

    ``send_and_receive(query)`` sends ``query`` and returns the answer
    (``b""``/None when nothing arrived; it may raise OSError, e.g. a
    timeout).  Anything but exactly one well-formed status byte per query
    gives UNKNOWN.  Precedence: cover open, paper out, offline, near end.
    """
    answers = []
    for query in (QUERY_PRINTER, QUERY_OFFLINE_CAUSE, QUERY_PAPER):
        try:
            answer = send_and_receive(query)
        except OSError:  # includes TimeoutError / socket.timeout
            return PrinterStatus.UNKNOWN
        if not answer or len(answer) != 1 or answer[0] & _FIXED_MASK != _FIXED_BITS:
            return PrinterStatus.UNKNOWN
        answers.append(answer[0])
    printer, cause, paper = answers
    if cause & 0x04:
        return PrinterStatus.COVER_OPEN
    if paper & 0x60:
        return PrinterStatus.PAPER_OUT
    if printer & 0x08:
        return PrinterStatus.OFFLINE
    if paper & 0x0C:
        return PrinterStatus.PAPER_NEAR_END
    return PrinterStatus.OK


class NetworkPrinter:
    """A printer on a raw TCP port (JetDirect / "port 9100")."""

    def __init__(self, host: str, port: int = 9100, timeout: float = 2.0):
        self.host, self.port, self.timeout = host, port, timeout

    def _connect(self) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=self.timeout)

    def status(self) -> PrinterStatus:
        """OFFLINE if no connection can be made, else the DLE EOT answers."""
        try:
            sock = self._connect()
        except OSError:
            return PrinterStatus.OFFLINE
        with sock:
            def send_and_receive(query: bytes) -> bytes:
                sock.sendall(query)
                answer = sock.recv(1)  # b"" if the printer closed the connection
                # Return whatever else already arrived too, so query_status
                # sees extra bytes (automatic status back, garbage) and says
                # "unknown" instead of reading them as the next answer.
                while answer and select.select([sock], [], [], 0)[0]:
                    more = sock.recv(64)
                    if not more:
                        break
                    answer += more
                return answer

            return query_status(send_and_receive)

    def print_bytes(self, data: bytes) -> None:
        """Deliver ``data`` on a fresh connection; OSError on failure.

        After sendall + shutdown(SHUT_WR) we read until the printer closes
        its side (at most ``timeout``): closing a socket with unread input
        (e.g. automatic status bytes) sends a RST, and Linux then discards
        data still queued for sending.  A printer that keeps the connection
        open is not an error.
        """
        with self._connect() as sock:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + self.timeout
            while (remaining := deadline - time.monotonic()) > 0:
                sock.settimeout(remaining)
                try:
                    if not sock.recv(4096):
                        break
                except TimeoutError:
                    break


class FilePrinter:
    """A printer behind a character device (``/dev/usb/lp0``) or a plain file.

    The path is never created: if ``/dev/usb/lp0`` vanished (printer
    unplugged), creating it as a regular file would silently swallow
    receipts.  A plain file used as a printer must exist beforehand.
    """

    def __init__(self, path):
        self.path = os.fspath(path)

    def status(self) -> PrinterStatus:
        """OFFLINE if the device cannot be opened for writing, else UNKNOWN.

        A write-only device gives no status back, so "openable" is all we know.
        """
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK)
        except OSError:
            return PrinterStatus.OFFLINE
        os.close(fd)
        return PrinterStatus.UNKNOWN

    def print_bytes(self, data: bytes) -> None:
        """Append ``data``; OSError on failure (e.g. FileNotFoundError)."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                if written <= 0:
                    raise OSError(f"short write to {self.path}")
                view = view[written:]
        finally:
            os.close(fd)


class SerialPrinter:
    """A printer on a serial port: the same DLE EOT queries over the line, and
    bytes written with the port's flow control."""

    def __init__(self, path: str, baudrate: int = 38400, bytesize: int = 8, parity: str = "N", stopbits: int = 1,
                 rtscts: bool = False, timeout: float = 1.0):
        self.path = path
        self.settings = {"baudrate": baudrate, "bytesize": bytesize, "parity": parity, "stopbits": stopbits,
                         "rtscts": rtscts, "timeout": timeout, "write_timeout": 10}

    def _open(self):
        import serial

        return serial.Serial(self.path, **self.settings)

    def status(self) -> PrinterStatus:
        import serial

        try:
            port = self._open()
        except (OSError, serial.SerialException):
            return PrinterStatus.OFFLINE
        with port:
            def send_and_receive(query: bytes) -> bytes | None:
                port.reset_input_buffer()
                port.write(query)
                return port.read(1) or None

            try:
                return query_status(send_and_receive)
            except serial.SerialException as exc:
                raise OSError(str(exc)) from None

    def print_bytes(self, data: bytes) -> None:
        import serial

        try:
            with self._open() as port:
                port.write(data)
                port.flush()
        except serial.SerialException as exc:
            raise OSError(str(exc)) from None
