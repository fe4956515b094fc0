"""Call models and how outcomes are counted."""

from __future__ import annotations

import random

import pytest

from kmed.load.scenarios import CALL_MODELS, classify, failure_cause, model_picker, models_of, needs_warmup
from kmed.ue.procedure import Outcome


def _outcome(result: str, *, cause: int | None = None, provisioned: bool = False, error: str | None = None,
             procedure: str = "attach") -> Outcome:
    return Outcome(procedure=procedure, result=result, emm_cause=cause, kme_provisioned=provisioned,
                   kme_fingerprint=None, imsi="001010000000001", imei="356938035643809", error=error)


def test_accepted_attach_named_by_what_happened() -> None:
    attach, provision = CALL_MODELS["attach"], CALL_MODELS["provision"]
    assert classify(attach, _outcome("accepted")).name == "attach"
    c = classify(attach, _outcome("accepted", provisioned=True))
    assert (c.name, c.ok) == ("attach_provision", True)  # CONTRACT: an attach that provisioned a KME
    c = classify(provision, _outcome("accepted", provisioned=True))
    assert (c.name, c.ok) == ("attach_provision", True)
    c = classify(provision, _outcome("accepted"))
    assert (c.name, c.ok, c.cause) == ("attach_provision", False, "no_kme_provisioned")
    assert classify(CALL_MODELS["tau"], _outcome("accepted", procedure="tau")).name == "tau"


def test_rejects_by_emm_cause() -> None:
    c = classify(CALL_MODELS["attach"], _outcome("rejected", cause=6))
    assert (c.name, c.ok, c.cause) == ("attach", False, "emm_cause_6_illegal_me")
    c = classify(CALL_MODELS["provision"], _outcome("rejected", cause=17))
    assert (c.name, c.cause) == ("attach_provision", "emm_cause_17_network_failure")
    assert classify(CALL_MODELS["tau"], _outcome("rejected", cause=250)).cause == "emm_cause_250_unknown_250"
    c = classify(CALL_MODELS["attach"], _outcome("rejected", error="authentication rejected by the network"))
    assert c.cause == "authentication_reject"


@pytest.mark.parametrize(("error", "cause"), [
    ("timeout: no outcome within 10 s", "timeout"),
    ("no answer: T3410 expired 1 times", "timeout"),
    ("UE link down (connection lost: [Errno 104] Connection reset by peer)", "transport"),
    ("connection closed before the attach completed", "transport"),
    ("cannot reach the CNN: tcp://127.0.0.1:1: Connection refused", "transport"),
    ("released by the network before the attach completed", "released"),
    ("3 consecutive authentication failures (last cause #20)", "protocol"),
    (None, "protocol"),
])
def test_failure_causes(error: str | None, cause: str) -> None:
    assert failure_cause(error) == cause
    c = classify(CALL_MODELS["attach"], _outcome("failed", error=error))
    assert (c.name, c.ok, c.cause, c.detail) == ("attach", False, cause, error)


def test_models_and_warmup() -> None:
    mix = {"attach": 70.0, "provision": 10.0, "tau": 0.0}
    assert models_of("mix", mix) == {"attach": 70.0, "provision": 10.0, "tau": 0.0}
    assert models_of("tau", mix) == {"tau": 1.0}
    assert needs_warmup("attach", mix) and needs_warmup("tau", mix) and needs_warmup("mix", mix)
    assert not needs_warmup("provision", mix)
    assert not needs_warmup("mix", {"provision": 1.0})
    with pytest.raises(ValueError):
        models_of("mix", {"attach": 0.0})
    with pytest.raises(ValueError):
        models_of("detach", mix)


def test_picker() -> None:
    pick = model_picker("mix", {"attach": 1.0, "provision": 0.0, "tau": 1.0}, random.Random(2))
    names = {pick().name for _ in range(200)}
    assert names == {"attach", "tau"}
    only = model_picker("provision", {}, random.Random(2))
    assert only().name == "provision"
