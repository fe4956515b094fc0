"""CPU cost of the CNN state machine per procedure (not a test: prints figures).

Run: .venv/bin/python -m tests.cnn.bench_cnn [N]

Drives N match attaches and N provisioning attaches through :class:`kmed.cnn.procedure.Cnn` with
the scripted UE and HSS of tests/cnn/scripted.py, and times (thread CPU time) only the CNN's own calls
(``nas_uplink``, ``s6a_answer``; NAS and Diameter decoding of what the CNN receives, its crypto,
encoding of what it sends, log actions at ``info``). The UE's and HSS's work is not counted.
The Diameter encode/decode on the wire and the asyncio/framing costs of the daemon are not
included either. Figures are µs per procedure, best of 3 runs, on a shared 2-core machine: noisy.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from kmed.cnn.contexts import link_key
from kmed.cnn.procedure import Cnn, SendNas, SendS6a
from kmed.nas.ies import SecurityHeaderType
from kmed.nas.security import security_header_type
from tests.cnn.scripted import ScriptedHss, ScriptedUe, new_pair, settings


class TimedNet:
    """Like scripted.Net, but accumulates the time spent inside the CNN."""

    def __init__(self, cnn: Cnn, hss: ScriptedHss) -> None:
        self.cnn, self.hss = cnn, hss
        self.spent = 0.0

    def call(self, fn: Any, *args: Any) -> list[Any]:
        t0 = time.thread_time()
        out = fn(*args)
        self.spent += time.thread_time() - t0
        return list(out)

    def up(self, key: int, pdu: bytes) -> bytes | None:
        queue = self.call(self.cnn.nas_uplink, key, pdu)
        last = None
        while queue:
            a = queue.pop(0)
            if isinstance(a, SendNas):
                last = a.pdu
            elif isinstance(a, SendS6a):
                answer = self.hss.answer(a.request)
                assert answer is not None
                queue += self.call(self.cnn.s6a_answer, a.key, a.token, answer)
        return last


def attach(net: TimedNet, ue: ScriptedUe, key: int) -> None:
    dl = net.up(key, ue.attach_request())
    while True:
        assert dl is not None
        if security_header_type(dl) == SecurityHeaderType.INTEGRITY_NEW_CONTEXT:
            dl = net.up(key, ue.smc_complete(dl))
            continue
        msg = ue.receive(dl)
        if msg.name == "authentication_request":
            dl = net.up(key, ue.auth_response(msg))
        elif msg.name == "kme_provisioning_command":
            dl = net.up(key, ue.kme_response(msg))
        else:
            assert msg.name == "attach_accept", msg.name
            net.up(key, ue.attach_complete(msg))
            net.call(net.cnn.link_released, key)
            return


def run(n: int, provision: bool) -> float:
    cnn = Cnn(settings(), debug=False)
    hss = ScriptedHss()
    ue = ScriptedUe()
    new_pair(hss, ue)
    net = TimedNet(cnn, hss)
    attach(net, ue, link_key(1, 1))  # the first attach provisions: the UE and HSS now match
    net.spent = 0.0
    for i in range(n):
        if provision:
            ue.kme = None  # no KME_Check: the HSS provisions again
            ue.guti = None
        attach(net, ue, link_key(1, 2 + i))
    return net.spent / n * 1e6


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 300
    for name, provision in (("match attach", False), ("provisioning attach", True)):
        best = min(run(n, provision) for _ in range(3))
        print(f"CNN core, {name:20s}: {best:7.1f} µs/procedure  (~{1e6 / best:,.0f}/s on one core, "
              f"state machine only, n={n})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
