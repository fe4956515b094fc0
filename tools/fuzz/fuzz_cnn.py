#!/usr/bin/env python3
"""atheris: the CNN's state machine driven by octets (tools/fuzz/README.md).

The input is read as a program (atheris.FuzzedDataProvider): first how many honest moves the
scripted UE and HSS make (so any state is reached), then events until the input runs out --
an uplink PDU (raw octets, the UE's correct next message, the last one replayed or mutated, or
raw octets protected with the UE's security context), an S6a answer (honest, or one AVP
mutated, or any result code), a failure, the timer, the link released. Properties, as in
tests/fuzz/test_cnn_sequences.py: no exception, nothing unsendable, no stuck procedure, and a
neighbour UE then attaches.
"""

from __future__ import annotations

import atheris
import common

with atheris.instrument_imports(include=["kmed"]):  # coverage of kmed only, not of the test helpers
    import kmed.cnn.procedure
    import kmed.diameter.codec
    import kmed.nas.codec  # noqa: F401
    from kmed.nas.security import UPLINK

from tests.cnn.scripted import Net, ScriptedHss, ScriptedUe, attach_until_accept, new_pair
from tests.fuzz.test_cnn_sequences import NEIGHBOUR_KEY, S6A_FAILURES, VENDORS, Scenario

ANSWER_HOW = ("drop", "duplicate", "raw", "value")


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    sc = Scenario()
    for _ in range(fdp.ConsumeIntInRange(0, 16)):
        sc.advance()
    while fdp.remaining_bytes():
        kind = fdp.ConsumeIntInRange(0, 11)
        if kind in (0, 1):
            sc.advance()
        elif kind == 2:
            sc.up(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 80)))
        elif kind == 3 and sc.last_up:
            pdu = bytearray(sc.last_up)
            pdu[fdp.ConsumeIntInRange(0, len(pdu) - 1)] ^= fdp.ConsumeIntInRange(1, 255)
            sc.up(bytes(pdu[: max(2, fdp.ConsumeIntInRange(0, len(pdu)))]))
        elif kind == 4 and sc.last_up:
            sc.up(sc.last_up)
        elif kind == 5:
            body = b"\x07" + fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 60))
            ctx = sc.ue.ctx
            sc.up(ctx.protect(body, UPLINK, fdp.ConsumeIntInRange(1, 4)) if ctx is not None and len(body) > 1 else body)
        elif kind == 6:
            args = (fdp.ConsumeIntInRange(0, 1000), ANSWER_HOW[fdp.ConsumeIntInRange(0, 3)],
                    fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 40)), fdp.ConsumeIntInRange(0, 2**32 - 1))
            sc.answer(lambda req, a=args: sc._mutated(req, *a))
        elif kind == 7:
            vendor, code, m = VENDORS[fdp.ConsumeIntInRange(0, 3)], fdp.ConsumeIntInRange(0, 6000), fdp.ConsumeBool()
            sc.answer(lambda req, v=vendor, c=code, u=m: sc._random_answer(req, v, c, u))
        elif kind == 8:
            reason = S6A_FAILURES[fdp.ConsumeIntInRange(0, 2)]
            sc.answer(lambda req, r=reason: r)
        elif kind == 9:
            sc.do(("timer",))
        elif kind == 10:
            sc.do(("release",))
        else:
            sc.do(("attach", fdp.ConsumeBool()))
        sc.check_nothing_stuck()
    other = ScriptedUe(imsi="001010000000002", imei="356938035643817")
    hss2 = ScriptedHss(imsi=other.imsi)
    new_pair(hss2, other)
    assert attach_until_accept(Net(sc.cnn, hss2, key=NEIGHBOUR_KEY), other).name == "attach_accept"


def seeds() -> list[bytes]:
    return [bytes([16]) + bytes(40), bytes([4, 2, 5, 9, 0, 1, 0, 1, 0, 1, 6, 7, 8]), bytes([10]) + b"\x00\x01" * 20]


if __name__ == "__main__":
    common.fuzz(test_one_input, seeds)
