"""The convergence invariants on hand-made views (each must catch what it is for)."""

from __future__ import annotations

from kmed.faults.convergence import StoreView, UeView, acknowledged_stores, check

IND = 5


def store(**kme: str | None) -> StoreView:
    view = StoreView()
    for imsi, fp in kme.items():
        view.sqn[imsi] = (10 << IND) | 3
        view.kme[imsi] = fp
        if fp is not None:
            view.stored[imsi] = ["old", fp] if fp != "old" else ["old"]
    return view


def test_all_converged() -> None:
    s = store(a="k1", b="k2")
    c = check(s, {"a": UeView("k1", 5 << IND), "b": UeView("k2", 10 << IND | 7)}, {"a": "k1"}, IND)
    assert c.all_converged and c.nothing_lost
    assert c.summary()["converged"] == 2 and c.acknowledged == 1


def test_mismatch_and_missing_kme_are_not_converged() -> None:
    s = store(a="k1", b="k2")
    c = check(s, {"a": UeView("other", 0), "b": UeView(None, 0), "zz": UeView("k1", 0)}, {}, IND)
    assert c.mismatched == ["a", "b"] and c.unknown_to_hss == ["zz"] and not c.all_converged
    assert c.nothing_lost  # a mismatch is not a loss: the next attach provisions again


def test_sqn_behind_the_usim_is_a_loss() -> None:
    s = store(a="k1")
    # Same SEQ, higher IND in the USIM: fine (after a resynchronisation SEQ_HE = SEQ_MS).
    assert not check(s, {"a": UeView("k1", (10 << IND) | 31)}, {}, IND).sqn_behind
    c = check(s, {"a": UeView("k1", 11 << IND)}, {}, IND)
    assert c.sqn_behind == [("a", 10, 11)] and not c.nothing_lost


def test_acknowledged_kme_lost_or_replaced_by_an_older_one() -> None:
    s = store(a="k1", b="old")
    c = check(s, {}, {"a": "k9", "b": "k1"}, IND)
    assert [imsi for imsi, _ in c.lost_acknowledged] == ["a", "b"]
    s.stored["b"] = ["k1", "old"]  # "old" was stored after k1: b holds a later store, fine
    assert [imsi for imsi, _ in check(s, {}, {"b": "k1"}, IND).lost_acknowledged] == []
    s.stored["b"] = ["k1", "old", "k1"]  # k1 stored again last, yet "old" is held: lost
    assert [imsi for imsi, _ in check(s, {}, {"b": "k1"}, IND).lost_acknowledged] == ["b"]


def test_store_holding_another_kme_than_its_last_stored_is_inconsistent() -> None:
    s = store(a="k1")
    s.kme["a"] = "k0"
    assert check(s, {}, {}, IND).inconsistent_store == ["a"]


def test_acknowledged_stores_follow_each_procedure_in_log_order() -> None:
    events = [
        {"event": "kme_received", "link": 1, "ue_id": 1, "imsi": "a", "kme_fingerprint": "k1"},
        {"event": "kme_received", "link": 1, "ue_id": 2, "imsi": "b", "kme_fingerprint": "k2"},
        {"event": "location_updated", "link": 1, "ue_id": 1, "imsi": "a", "kme_stored": True},
        {"event": "location_updated", "link": 1, "ue_id": 2, "imsi": "b", "kme_stored": False},  # refused
        {"event": "cnn_ready"},  # a restart: link numbers begin again
        {"event": "kme_received", "link": 1, "ue_id": 1, "imsi": "a", "kme_fingerprint": "k3"},  # never acked
        {"event": "kme_received", "link": 1, "ue_id": 3, "imsi": "b", "kme_fingerprint": "k4"},
        {"event": "location_updated", "link": 1, "ue_id": 3, "imsi": "b", "kme_stored": True},
        {"event": "location_updated", "link": 2, "ue_id": 9, "imsi": "c", "kme_stored": True},  # no KME seen
    ]
    assert acknowledged_stores(events) == {"a": "k1", "b": "k4"}
