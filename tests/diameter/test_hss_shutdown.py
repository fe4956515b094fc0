"""A real ``kmed hss`` stopped with SIGTERM under a closed loop of AIRs from kmed's
DiameterClient (as the CNN sends them): every request the HSS received is answered before its
connection closes (RFC 6733 §5.4: the AIRs that crossed its DPR are served, not dropped), so
no request times out; requests made after the connection closed find no peer."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from pathlib import Path

from kmed.cnn.s6a import build_air
from kmed.config import Endpoint
from kmed.diameter.client import DiameterClient
from kmed.diameter.node import LocalNode
from kmed.lab import DEFAULT_K, DEFAULT_OPC, Lab
from kmed.load.labfile import provision_range_args

from .test_transport import run

IMSI_FIRST = "001010000700000"
UES = 50


def test_hss_sigterm_answers_every_request_it_received(tmp_path: Path) -> None:
    lab = Lab(tmp_path, log_level="warning")
    lab.start("hss")
    try:
        lab.admin(*provision_range_args(UES, IMSI_FIRST, "35693803700000", DEFAULT_K, DEFAULT_OPC,
                                        "00112233445566778899aabbccddeeff"))
        hss = lab.daemons["hss"].proc
        outcomes: Counter[str] = Counter()

        async def main() -> None:
            client = DiameterClient(LocalNode("mme.localdomain", "localdomain"),
                                    [Endpoint("tcp", lab.host, lab.hss_port)], "localdomain", "hss.localdomain",
                                    request_timeout=2.0, backoff_initial=5.0)
            await client.start()
            running = True

            async def worker(w: int) -> None:
                i = 0
                while running:
                    i += 1
                    imsi = f"{int(IMSI_FIRST) + (w * 7 + i) % UES:015d}"
                    try:
                        answer = await client.request(build_air(f"mme;{w};{i}", imsi, bytes.fromhex("00f110")))
                        outcomes[f"answer {answer.result_code()}"] += 1
                    except Exception as exc:
                        outcomes[type(exc).__name__] += 1
                        await asyncio.sleep(0.05)

            workers = [asyncio.create_task(worker(w)) for w in range(32)]
            for _ in range(500):  # bounded: until the loop runs at speed
                if outcomes["answer 2001"] >= 500:
                    break
                await asyncio.sleep(0.02)
            os.kill(hss.pid, signal.SIGTERM)
            for _ in range(500):  # bounded: the HSS drains and exits
                if hss.poll() is not None:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(2.5)  # longer than a request's deadline: a dropped answer shows
            running = False
            await asyncio.gather(*workers)
            await client.close()

        run(main(), timeout=60.0)
        assert hss.returncode == 0
        assert outcomes["answer 2001"] >= 500
        assert outcomes["RequestTimeout"] == 0, dict(outcomes)
        assert set(outcomes) <= {"answer 2001", "NoPeerAvailable"}, dict(outcomes)
    finally:
        lab.stop_all()
