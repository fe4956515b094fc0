"""The CNN's admission control, sans I/O (docs/overload.md): beyond ``max_procedures``
procedures running or ``max_s6a_pending`` S6a requests unanswered, a new Attach/TAU Request is
refused at once with EMM #22 "congestion" and the back-off timer T3346 (TS 24.301 §5.5.1.2.5,
§5.5.3.2.5; T3346 value: GPRS timer 2, TS 24.008 §10.5.7.4), the UE released, nothing kept;
running procedures carry on, and admission resumes as soon as the load drops."""

from __future__ import annotations

from pathlib import Path

from kmed import config
from kmed.cnn.contexts import link_key
from kmed.cnn.procedure import Cnn, ReleaseUe, Settings, gprs_timer
from kmed.diameter import dictionary as d
from kmed.nas.causes import EmmCause
from kmed.nas.codec import NasMessage, decode
from tests.cnn.scripted import Net, ScriptedHss, ScriptedUe, attach_until_accept, make, new_pair


def _ue(i: int) -> tuple[ScriptedUe, ScriptedHss]:
    ue = ScriptedUe(imsi=f"00101000000{i:04d}", imei="356938035643809")
    hss = ScriptedHss(imsi=ue.imsi)
    new_pair(hss, ue)
    return ue, hss


def _start(cnn: Cnn, i: int, *, hold: bool = True) -> tuple[Net, ScriptedUe, bytes | None]:
    ue, hss = _ue(i)
    net = Net(cnn, hss, key=link_key(1, 100 + i))
    net.hold_s6a = hold
    return net, ue, net.up(ue.attach_request())


def _is_congestion_reject(pdu: bytes | None, t3346_s: float) -> bool:
    assert pdu is not None
    msg = decode(pdu)
    return (msg.name in ("attach_reject", "tracking_area_update_reject") and msg["emm_cause"] == EmmCause.CONGESTION
            and msg.get("t3346_value") == bytes((gprs_timer(t3346_s),)))


def test_beyond_max_procedures_new_attaches_get_22_with_t3346() -> None:
    cnn, *_ = make(max_procedures=2, t3346_s=120.0)
    nets = [_start(cnn, i) for i in range(2)]
    assert all(dl is None for _, _, dl in nets) and cnn.table.procedures == 2  # both wait for their AIA
    net3, _, dl = _start(cnn, 3)
    assert _is_congestion_reject(dl, 120.0)
    assert cnn.table.procedures == 2 and cnn.stats.refused_congestion == 1
    assert isinstance(net3.released[-1], ReleaseUe) and net3.outcomes[-1].emm_cause == EmmCause.CONGESTION
    assert not net3.held, "a refused UE must cost no S6a request"
    # the admitted ones carry on to the end ...
    net1, ue1, _ = nets[0]
    (held,) = net1.held
    net1.hold_s6a = False
    net1.held.clear()
    net1.run(cnn.s6a_answer(held.key, held.token, net1.hss.answer(held.request)))  # type: ignore[arg-type]
    accept = attach_until_accept_from_last(net1, ue1)
    net1.up(ue1.attach_complete(accept))
    assert net1.outcomes[-1].outcome == "ok" and cnn.table.procedures == 1
    # ... and with room again, the next attach is admitted
    _, _, dl = _start(cnn, 4)
    assert dl is None and cnn.table.procedures == 2


def attach_until_accept_from_last(net: Net, ue: ScriptedUe) -> NasMessage:
    """Continue an attach whose AIA was just delivered (the last downlink is the challenge)."""
    from tests.cnn.test_procedure import attach_until_accept_from

    return attach_until_accept_from(net, ue, net.downlink[-1])


def test_beyond_max_s6a_pending_new_attaches_get_22_until_answers_come() -> None:
    cnn, *_ = make(max_s6a_pending=1)
    net1, _, _ = _start(cnn, 1)
    assert cnn.s6a_pending == 1
    _, _, dl = _start(cnn, 2)
    assert _is_congestion_reject(dl, 60.0) and cnn.stats.refused_congestion == 1
    (held,) = net1.held
    net1.run(cnn.s6a_failed(held.key, held.token, "timeout"))  # answered (by a failure): not pending
    assert cnn.s6a_pending == 0
    _, _, dl = _start(cnn, 3)
    assert dl is None and cnn.s6a_pending == 1


def test_stale_answers_also_settle_the_pending_count() -> None:
    cnn, *_ = make(max_s6a_pending=1)
    net1, _, _ = _start(cnn, 1)
    (held,) = net1.held
    net1.run(cnn.link_released(net1.key))  # the UE went away; its AIR is still out
    assert cnn.s6a_pending == 1
    assert cnn.s6a_answer(held.key, held.token, net1.hss.answer(held.request)) == []  # type: ignore[arg-type]
    assert cnn.s6a_pending == 0 and cnn.stats.stale_events == 1


def test_tau_is_refused_with_22_and_t3346_too() -> None:
    cnn, _, ue, net = make(max_procedures=1)
    accept = attach_until_accept(net, ue)
    net.up(ue.attach_complete(accept))
    _start(cnn, 7)  # one procedure running: the table of running procedures is full
    dl = net.up(ue.tau_request())
    assert _is_congestion_reject(dl, 60.0)


def test_hss_too_busy_is_22_with_t3346() -> None:
    _, hss, ue, net = make(t3346_s=30.0)
    hss.force.append((0, d.DIAMETER_TOO_BUSY))
    assert _is_congestion_reject(net.up(ue.attach_request()), 30.0)


def test_configuration_keys(tmp_path: Path) -> None:
    path = tmp_path / "cnn.toml"
    path.write_text('[diameter]\norigin_host = "mme.localdomain"\norigin_realm = "localdomain"\n'
                    'connect = ["tcp://127.0.0.1:3868"]\ndestination_realm = "localdomain"\n'
                    '[nas]\nlisten = ["tcp://127.0.0.1:36412"]\nt3346_s = 900\n[plmn]\nmcc = "001"\nmnc = "01"\n'
                    '[cnn]\nmax_procedures = 50\nmax_s6a_pending = 20\n')
    s = Settings.from_config(config.load(path, config.CNN_SCHEMA))
    assert (s.max_procedures, s.max_s6a_pending, s.t3346_s) == (50, 20, 900.0)
    assert gprs_timer(900.0) == 0x20 | 15  # 15 minutes (unit 001 = 1 min, TS 24.008 §10.5.7.3)
    path.write_text(path.read_text().replace("max_procedures = 50", "max_procedures = 0"))
    try:
        config.load(path, config.CNN_SCHEMA)
    except config.ConfigError as exc:
        assert exc.key == "cnn.max_procedures"
    else:
        raise AssertionError("max_procedures = 0 accepted")
