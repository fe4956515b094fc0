"""Property tests: whatever a UE sends, at whatever point of the procedure, the CNN answers with
actions (never an exception), and keeps serving the UE's neighbours."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmed.cnn.contexts import link_key
from kmed.cnn.procedure import SendNas, State
from tests.cnn.scripted import Net, ScriptedHss, ScriptedUe, attach_until_accept, make, new_pair

_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(st.binary(max_size=80))
def test_random_bytes_never_crash(data: bytes) -> None:
    cnn, _, _, _ = make()
    cnn.nas_uplink(link_key(1, 3), data)


@_SETTINGS
@given(stage=st.integers(0, 3), pos=st.integers(0, 200), flip=st.integers(1, 255), cut=st.integers(0, 200))
def test_mutated_pdus_at_every_stage_never_crash_and_neighbours_attach(stage: int, pos: int, flip: int,
                                                                       cut: int) -> None:
    cnn, _, ue, net = make()
    dl = net.up(ue.attach_request())
    pdus = []
    assert dl is not None
    msg = ue.receive(dl)
    rsp = ue.auth_response(msg)
    pdus.append(rsp)
    smc = net.up(rsp)
    if stage >= 1 and smc is not None:
        complete = ue.smc_complete(smc)
        pdus.append(complete)
        cmd = net.up(complete)
        if stage >= 2 and cmd is not None:
            pdus.append(ue.kme_response(ue.receive(cmd)))
    base = pdus[min(stage, len(pdus) - 1)]
    mutated = bytearray(base[: max(2, cut)])
    if mutated:
        mutated[pos % len(mutated)] ^= flip
    actions = cnn.nas_uplink(net.key, bytes(mutated))
    for a in actions:
        if isinstance(a, SendNas):  # whatever is answered is an EMM PDU for this UE
            assert a.key == net.key and a.pdu[0] & 0x0F == 0x07
    proc = cnn.table.procedure(net.key)
    assert proc is None or proc.state != State.DONE
    # a neighbour UE on the same link attaches whatever happened to this one
    other = ScriptedUe(imsi="001010000000002", imei="356938035643817")
    hss2 = ScriptedHss(imsi=other.imsi)
    new_pair(hss2, other)
    net2 = Net(cnn, hss2, key=link_key(1, 8))
    assert attach_until_accept(net2, other).name == "attach_accept"
