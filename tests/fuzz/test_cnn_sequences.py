"""Structure-aware fuzzing of the CNN's state machine (kmed.cnn.procedure.Cnn, sans I/O).

A UE (tests/cnn/scripted.py: real NAS codec, NAS security and crypto) runs the seed procedure
while hypothesis interleaves, at whatever state the procedure is in:

- uplink: the UE's correct next message, a fresh Attach/TAU Request, random octets, the last
  uplink PDU mutated or replayed, random well-formed uplink EMM messages of every table
  (plain or protected with the UE's context under any security header type);
- S6a: the honest answer of the scripted HSS, that answer with one AVP at any depth dropped,
  re-valued or given data its type cannot hold, a random result code (Result-Code or
  Experimental-Result under any vendor) with unknown M-bit AVPs, a failure (timeout,
  unavailable, malformed) or an answer with a stale token;
- the UE's timer firing, the UE's link released.

The CNN must never raise; everything it sends must be sendable (EMM PDUs, S6a requests that
encode); no procedure may be left waiting for nothing (no timer armed and no S6a request
outstanding: a stuck UE context); and a neighbour UE on the same CNN still attaches.
"""

from __future__ import annotations

from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from kmed.cnn.contexts import link_key
from kmed.cnn.procedure import Action, LinkError, Outcome, ReleaseUe, SendNas, SendS6a, StartTimer, State
from kmed.diameter import codec
from kmed.diameter import dictionary as d
from kmed.diameter.message import Avp, DecodeError, Message
from kmed.nas.codec import NasMessage, encode
from kmed.nas.identity import imsi_identity
from kmed.nas.ies import SecurityHeaderType
from kmed.nas.messages import MESSAGES
from kmed.nas.security import UPLINK, security_header_type
from tests.cnn.scripted import Net, ScriptedHss, ScriptedUe, attach_until_accept, make, new_pair
from tests.fuzz.budget import fuzz
from tests.nas.test_codec import _value_strategy

UPLINK_SPECS = [m for m in MESSAGES if m.direction != "DL"]
NEIGHBOUR_KEY = link_key(2, 99)
S6A_FAILURES = ("timeout", "unavailable", "malformed")
VENDORS = (0, d.VENDOR_3GPP, d.VENDOR_KMED, 99999)


@st.composite
def uplink_messages(draw: st.DrawFn) -> NasMessage:
    """A well-formed uplink EMM message of any table (every mandatory IE, some optional ones)."""
    spec = draw(st.sampled_from(UPLINK_SPECS))
    values: dict[str, Any] = {}
    for ie in spec.ies:
        if ie.name != "spare_half_octet" and (ie.iei is None or draw(st.booleans())):
            values[ie.name] = draw(_value_strategy(ie))
    return NasMessage(spec.name, values)


# --- S6a answer mutations, one AVP at any depth ------------------------------------------------


def _paths(items: list[Any], prefix: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    """Every AVP's position in a tree of items (depth first)."""
    out: list[tuple[int, ...]] = []
    for i, it in enumerate(items):
        out.append((*prefix, i))
        if isinstance(it, tuple) and len(it) == 2 and isinstance(it[1], list):
            out += _paths(it[1], (*prefix, i))
    return out


def _mutate(items: list[Any], path: tuple[int, ...], how: str, data: bytes, number: int) -> list[Any]:
    """A copy of ``items`` with the AVP at ``path`` dropped, duplicated, given raw ``data``
    (whatever its type), or another value of its type."""
    items = list(items)
    i, rest = path[0], path[1:]
    if rest:
        name, members = items[i]
        items[i] = (name, _mutate(members, rest, how, data, number))
        return items
    item = items[i]
    if how == "drop":
        del items[i]
    elif how == "duplicate":
        items.insert(i, item)
    elif isinstance(item, tuple):
        a = d.avp(item[0])
        if how == "raw" or a.type is d.AvpType.GROUPED:
            items[i] = Avp(a.code, a.vendor, a.flags, data)
        elif isinstance(item[1], bytes):
            items[i] = (item[0], data)
        elif isinstance(item[1], int):
            items[i] = (item[0], number if a.type in (d.AvpType.UNSIGNED32, d.AvpType.UNSIGNED64)
                        else number - 2**31)
    return items


answer_mutations = st.tuples(st.integers(0, 1000), st.sampled_from(["drop", "duplicate", "raw", "value"]),
                             st.binary(max_size=40), st.integers(0, 2**32 - 1))


# --- the scenario ------------------------------------------------------------------------------

_progress = [st.tuples(st.just("step")), st.tuples(st.just("honest"))] * 6  # the procedure moves on
ops = st.one_of(
    *_progress,
    st.tuples(st.just("attach"), st.booleans()),
    st.tuples(st.just("tau")),
    st.tuples(st.just("garbage"), st.binary(max_size=60)),
    st.tuples(st.just("mutate"), st.integers(0, 500), st.integers(1, 255), st.integers(0, 500)),
    st.tuples(st.just("replay")),
    st.tuples(st.just("random_msg"), uplink_messages(), st.sampled_from([0, 1, 2, 3, 4])),
    st.tuples(st.just("mutated_answer"), answer_mutations),
    st.tuples(st.just("random_answer"), st.sampled_from(VENDORS), st.integers(0, 6000), st.booleans()),
    st.tuples(st.just("failed"), st.sampled_from(S6A_FAILURES)),
    st.tuples(st.just("stale")),
    st.tuples(st.just("timer")),
    st.tuples(st.just("release")),
)


class Scenario:
    """The victim UE, its scripted HSS (answers held for the fuzzer) and what the CNN did."""

    def __init__(self) -> None:
        self.cnn, self.hss, self.ue, self.net = make()
        self.net.hold_s6a = True
        self.key = self.net.key
        self.last_up: bytes | None = None
        self.last_down: bytes | None = None
        self.steps = 0

    # every CNN call goes through here: it must not raise, and what it asks for must be doable
    def run(self, actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, SendNas):
                assert a.pdu and a.pdu[0] & 0x0F == 0x07, "downlink is not an EMM PDU"
                if a.key == self.key:
                    self.last_down = a.pdu
            elif isinstance(a, SendS6a):
                assert a.command in ("AIR", "ULR") and codec.decode(codec.encode(a.request)).is_request
            elif isinstance(a, StartTimer):
                assert a.seconds > 0
            elif isinstance(a, (ReleaseUe, LinkError, Outcome)):
                assert a.key in (self.key, NEIGHBOUR_KEY)
        self.net.run(actions)

    def up(self, pdu: bytes) -> None:
        self.last_up = pdu
        self.run(self.cnn.nas_uplink(self.key, pdu))

    def answer(self, make_answer: Any) -> None:
        if not self.net.held:
            return
        req = self.net.held.pop(0)
        answer = make_answer(req)
        if isinstance(answer, str):
            self.run(self.cnn.s6a_failed(req.key, req.token, answer))
        else:
            self.run(self.cnn.s6a_answer(req.key, req.token, answer))

    def ue_reply(self) -> bytes:
        """The scripted UE's correct answer to the last downlink (a new Attach Request if it has
        none or cannot make sense of it: the UE is not what is tested)."""
        dl, ue = self.last_down, self.ue
        try:
            if dl is None:
                raise ValueError("nothing to answer")
            if security_header_type(dl) == SecurityHeaderType.INTEGRITY_NEW_CONTEXT:
                return ue.smc_complete(dl)
            msg = ue.receive(dl)
            if msg.name == "identity_request":
                return ue.send(NasMessage("identity_response", {"mobile_identity": imsi_identity(ue.imsi)}))
            if msg.name == "authentication_request":
                return ue.auth_response(msg)
            if msg.name == "kme_provisioning_command":
                return ue.kme_response(msg)
            if msg.name == "attach_accept":
                return ue.attach_complete(msg)
            if msg.name == "tracking_area_update_accept":
                return ue.tau_complete(msg)
        except Exception:  # the scripted UE gave up: it starts over below
            pass
        return ue.attach_request()

    def advance(self) -> None:
        """One honest move: the HSS answers what is held, else the UE answers the CNN."""
        if self.net.held:
            self.answer(self._honest)
        else:
            self.up(self.ue_reply())

    def do(self, op: tuple[Any, ...]) -> None:
        kind = op[0]
        if kind == "step":
            self.up(self.ue_reply())
        elif kind == "honest":
            self.answer(self._honest)
        elif kind == "attach":
            self.up(self.ue.attach_request(use_guti=op[1]))
        elif kind == "tau":
            self.up(self.ue.tau_request() if self.ue.guti is not None else self.ue.attach_request())
        elif kind == "garbage":
            self.up(op[1])
        elif kind == "mutate" and self.last_up:
            pdu = bytearray(self.last_up[: max(2, op[3])])
            pdu[op[1] % len(pdu)] ^= op[2]
            self.up(bytes(pdu))
        elif kind == "replay" and self.last_up:
            self.up(self.last_up)
        elif kind == "random_msg":
            pdu = encode(op[1])
            if op[2] and self.ue.ctx is not None:
                pdu = self.ue.ctx.protect(pdu, UPLINK, op[2])
            self.up(pdu)
        elif kind == "mutated_answer":
            self.answer(lambda req: self._mutated(req, *op[1]))
        elif kind == "random_answer":
            self.answer(lambda req: self._random_answer(req, op[1], op[2], op[3]))
        elif kind == "failed":
            self.answer(lambda req: op[1])
        elif kind == "stale" and self.net.held:
            req = self.net.held[0]
            self.run(self.cnn.s6a_failed(req.key, req.token + 1000, "timeout"))
        elif kind == "timer" and self.key in self.net.timers:
            t = self.net.timers.pop(self.key)
            self.run(self.cnn.timer_expired(t.key, t.token))
        elif kind == "release":
            self.run(self.cnn.link_released(self.key))
            self.net.held = [h for h in self.net.held if h.key != self.key]

    def _honest(self, req: SendS6a) -> Message | str:
        """The scripted HSS's answer (it knows one subscriber: others are unknown users)."""
        try:
            return self.hss.answer(req.request) or "timeout"
        except (AssertionError, KeyError, ValueError):
            return self._random_answer(req, d.VENDOR_3GPP, d.DIAMETER_ERROR_USER_UNKNOWN, False)

    def _mutated(self, req: SendS6a, index: int, how: str, data: bytes, number: int) -> Message | str:
        honest = self._honest(req)
        if isinstance(honest, str):
            return honest
        items = honest.avps
        paths = _paths(items)
        mutated = _mutate(items, paths[index % len(paths)], how, data, number)
        try:
            return codec.decode(codec.encode(Message.answer_to(honest, mutated)))
        except DecodeError:  # the Diameter client drops an undecodable answer and its connection
            return "malformed"

    @staticmethod
    def _random_answer(req: SendS6a, vendor: int, code: int, unknown_m: bool) -> Message:
        request = codec.decode(codec.encode(req.request))
        result: Any = ("Result-Code", code) if vendor == 0 else (
            "Experimental-Result", [("Vendor-Id", vendor), ("Experimental-Result-Code", code)])
        items: list[Any] = [result, ("Origin-Host", "hss"), ("Origin-Realm", "r")]
        if unknown_m:
            items.append(Avp(60001, 99999, d.AVP_FLAG_M, b"\x01"))
        return codec.decode(codec.encode(Message.answer_to(request, items, error=vendor == 0 and 3000 <= code < 4000)))

    def check_nothing_stuck(self) -> None:
        """Every procedure waits for something that will come: its timer, or its S6a answer."""
        held = {(h.key, h.token) for h in self.net.held}
        for key, proc in self.cnn.table.iter_procedures():
            assert proc.state != State.DONE
            waiting_s6a = proc.s6a_token != 0 and (key, proc.s6a_token) in held
            waiting_timer = key in self.net.timers and self.net.timers[key].token == proc.timer_token
            assert waiting_s6a or waiting_timer, f"stuck procedure: {proc!r}"


@fuzz(600)
@given(st.integers(0, 16), st.lists(ops, min_size=1, max_size=25))
def test_any_interleaving_never_crashes_never_sticks_and_the_neighbour_attaches(
        honest_moves: int, steps: list[tuple[Any, ...]]) -> None:
    sc = Scenario()
    for _ in range(honest_moves):  # first the procedure runs honestly to some state ...
        sc.advance()
    proc = sc.cnn.table.procedure(sc.key)
    event(f"fuzzing from {proc.state.name if proc is not None else 'no procedure'}")
    for op in steps:  # ... then anything happens

        sc.do(op)
        sc.check_nothing_stuck()
    assert sc.cnn.table.procedures <= 1
    # the neighbour: another UE on another link of the same CNN, an honest HSS answering at once
    other = ScriptedUe(imsi="001010000000002", imei="356938035643817")
    hss2 = ScriptedHss(imsi=other.imsi)
    new_pair(hss2, other)
    net2 = Net(sc.cnn, hss2, key=NEIGHBOUR_KEY)
    accept = attach_until_accept(net2, other)
    assert accept.name == "attach_accept"
    net2.run(sc.cnn.nas_uplink(NEIGHBOUR_KEY, other.attach_complete(accept)))
    assert [o.outcome for o in net2.outcomes] == ["ok"]
    victim = sc.cnn.table.procedure(sc.key)
    event(f"victim ended in {victim.state.name if victim is not None else 'no procedure'}")
