"""Helpers of the operations tests: daemons started with a chosen environment (NOTIFY_SOCKET,
WATCHDOG_USEC), sd_notify datagrams, Prometheus scrapes, waits on JSON log lines."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kmed.diameter import codec
from kmed.diameter import dictionary as d
from kmed.diameter.message import Message
from kmed.lab import DEFAULT_K, DEFAULT_OPC, Lab, kmed_argv, wait_listening
from kmed.nas import esm
from kmed.nas.codec import NasMessage, encode
from kmed.nas.frame import Frame, FrameDecoder, FrameType, encode_frame
from kmed.nas.identity import imsi_identity
from kmed.nas.ies import ue_network_capability

#: Bound on every wait of these tests (seconds); the waits end as soon as their condition holds.
WAIT_S = 30.0


@contextlib.contextmanager
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """An AF_UNIX datagram socket as systemd gives in ``$NOTIFY_SOCKET`` (a short path: sun_path
    holds 108 octets, pytest's tmp_path may not fit)."""
    directory = tempfile.mkdtemp(prefix="kmed-ops-")
    path = os.path.join(directory, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(path)
        yield sock, path
    finally:
        sock.close()
        shutil.rmtree(directory, ignore_errors=True)


def recv_until(sock: socket.socket, done: Callable[[list[str]], bool], timeout: float = WAIT_S,
               proc: subprocess.Popen[bytes] | None = None) -> list[str]:
    """Datagrams received (decoded) until ``done(all so far)`` holds; AssertionError on timeout
    or when ``proc`` exits first."""
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while not done(got):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"sd_notify: condition not met after {timeout} s; received {got}")
        sock.settimeout(min(0.5, left))
        try:
            got.append(sock.recv(4096).decode())
        except TimeoutError:
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"the daemon exited {proc.returncode}; received {got}") from None
    return got


def start(lab: Lab, name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``kmed hss``/``kmed cnn`` of ``lab`` with extra environment; its stdout and stderr
    are appended to ``logs/NAME.log``. Does not wait."""
    config = lab.hss_config if name == "hss" else lab.cnn_config
    with (lab.root / "logs" / f"{name}.log").open("ab") as log:
        return subprocess.Popen(kmed_argv(name, "--config", str(config)), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def start_listening(lab: Lab, name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    proc = start(lab, name, env)
    wait_listening(lab.host, lab.hss_port if name == "hss" else lab.cnn_port, WAIT_S, proc)
    return proc


def stop(proc: subprocess.Popen[bytes], sig: int = 15) -> int:
    """Send ``sig`` (SIGTERM) and return the exit status (SIGKILL after the bound)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(WAIT_S)
            raise AssertionError("the daemon did not exit after SIGTERM") from None
    return int(proc.returncode)


def events(path: Path) -> list[dict[str, Any]]:
    """The JSON log lines of ``path`` (other lines skipped)."""
    out: list[dict[str, Any]] = []
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            obj = json.loads(line)
            if isinstance(obj, dict):
                out.append(obj)
    return out


def wait_event(path: Path, match: Callable[[dict[str, Any]], bool], timeout: float = WAIT_S) -> dict[str, Any]:
    """The first log event of ``path`` for which ``match`` holds, waiting for it to be written."""
    deadline = time.monotonic() + timeout
    while True:
        for ev in events(path):
            if match(ev):
                return ev
        if time.monotonic() > deadline:
            raise AssertionError(f"no matching event in {path} after {timeout} s")
        time.sleep(0.05)


def scrape(host: str, port: int) -> dict[str, float]:
    """``GET /metrics``: series (name with its label text, as exposed) -> value."""
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: kmed\r\n\r\n")
        data = b""
        for _ in range(10_000):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert b"text/plain; version=0.0.4" in head
    series: dict[str, float] = {}
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"(\S+?(?:\{.*\})?) (\S+)", line)
        assert m, line
        series[m.group(1)] = float(m.group(2))
    return series


class RawPeer:
    """A bare Diameter peer over TCP: CER, then whatever messages a test sends, read one by one."""

    def __init__(self, port: int, origin_host: str = "mme.localdomain", host: str = "127.0.0.1") -> None:
        self.origin_host = origin_host
        self.sock = socket.create_connection((host, port), timeout=10)
        self.buf = b""

    def cer(self) -> Message:
        """Send a CER for S6a; return the CEA."""
        self.send(Message.request("CER", None, [
            ("Origin-Host", self.origin_host), ("Origin-Realm", "localdomain"), ("Host-IP-Address", "127.0.0.1"),
            ("Vendor-Id", 32473), ("Product-Name", "kmed-tests"), ("Auth-Application-Id", d.APP_S6A),
        ], hop_by_hop=1, end_to_end=1))
        cea = self.recv()
        assert cea is not None, "connection closed before the CEA"
        return cea

    def send(self, msg: Message | bytes) -> None:
        self.sock.sendall(msg if isinstance(msg, bytes) else codec.encode(msg))

    def recv(self, timeout: float = WAIT_S) -> Message | None:
        """The next message, or None when the HSS closed the connection."""
        deadline = time.monotonic() + timeout
        while True:
            n = codec.frame_length(self.buf)
            if n is not None and len(self.buf) >= n:
                msg, self.buf = codec.decode(self.buf[:n]), self.buf[n:]
                return msg
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no complete message after {timeout} s")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            self.buf += chunk

    def close(self) -> None:
        self.sock.close()


IMSI = "001010000000001"
IMEI = "356938035643809"


def provision_one(lab: Lab, imsi: str = IMSI, imei: str = IMEI, name: str = "me-a") -> Path:
    """One subscriber, its device and the allowed pair (``kmed admin``); the UE's config file."""
    lab.admin("subscriber", "add", "--imsi", imsi, "--k", DEFAULT_K, "--opc", DEFAULT_OPC)
    priv, pub = lab.gen_device_key(name)
    lab.admin("device", "add", "--imei", imei, "--public-key", str(pub))
    lab.admin("pair", "allow", "--imsi", imsi, "--imei", imei)
    return lab.ue_config(name, imsi=imsi, imei=imei, private_key=priv)


def open_files(pid: int) -> list[str]:
    """Paths the process has open (Linux /proc)."""
    out = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            out.append(os.readlink(fd))
    return out


def named(event: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    """A :func:`wait_event` matcher: this event name with these field values."""
    return lambda e: e.get("event") == event and all(e.get(k) == v for k, v in fields.items())


class StuckUe:
    """A UE link client whose UE sends an Attach Request and then never answers: a procedure
    the CNN holds in flight (until its timers run out after their retransmissions)."""

    def __init__(self, port: int, imsi: str, ue_id: int = 7, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.decoder = FrameDecoder()
        self.frames: list[Frame] = []
        self.ue_id = ue_id
        self.sock.sendall(encode_frame(FrameType.LINK_SETUP, 0, b"kmed-tests-stuck-ue"))
        assert self.next_frame().type == FrameType.LINK_SETUP_ACK
        request = encode(NasMessage("attach_request", {
            "eps_attach_type": 1, "nas_key_set_identifier": 7, "eps_mobile_identity": imsi_identity(imsi),
            "ue_network_capability": ue_network_capability(eea=(0, 2), eia=(2,)),
            "esm_message_container": esm.pdn_connectivity_request(),
        }))
        self.sock.sendall(encode_frame(FrameType.NAS_UPLINK, ue_id, request))

    def next_frame(self, timeout: float = WAIT_S) -> Frame:
        deadline = time.monotonic() + timeout
        while not self.frames:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no frame after {timeout} s")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed by the CNN")
            self.frames += self.decoder.feed(data)
        return self.frames.pop(0)

    def rest(self, timeout: float = WAIT_S) -> list[Frame]:
        """Every frame until the CNN closes the connection."""
        out: list[Frame] = []
        try:
            while True:
                out.append(self.next_frame(timeout))
        except (ConnectionError, OSError):
            return out

    def close(self) -> None:
        self.sock.close()
