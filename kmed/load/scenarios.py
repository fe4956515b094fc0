"""Call models of ``kmed load --scenario`` and how an outcome is counted (pure).

- ``attach``: Attach with KME_Check, the HSS finds a MATCH (seed steps 1, 2, 12, 13). Needs
  an ME holding the KME the HSS holds (the warm-up sees to it). Counted as ``attach``.
- ``provision``: the USIM meets a new ME (a factory-reset device, no KME): full provisioning
  (steps 1-13). No precondition. Counted as ``attach_provision``.
- ``tau``: TAU with the GUTI and KME_Check over it (docs/procedure.md, TAU). Needs a GUTI and
  a matching KME (warm-up). Counted as ``tau``.
- ``mix``: one of the three per arrival, with the weights of ``[mix]``.

Names follow CONTRACT: an attach that took a new KME into use is ``attach_provision``, any
other accepted attach is ``attach``, whatever the model intended. A ``provision`` attach
accepted without a new KME is a failure (``no_kme_provisioned``): the call model was not
exercised.

Error causes (report ``errors``): ``emm_cause_<n>_<name>`` for a reject with an EMM cause
(TS 24.301 table 9.9.3.9.1), ``authentication_reject``, ``timeout`` (no outcome within the
procedure deadline), ``transport`` (UE link refused, lost, or ERROR), ``released`` (the CNN
released the UE before the end), ``protocol`` (any other failure of the UE procedure),
``no_kme_provisioned``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kmed.load.arrivals import WeightedChoice
from kmed.nas.causes import cause_name
from kmed.ue.procedure import ATTACH, TAU, Outcome

__all__ = [
    "CALL_MODELS",
    "SCENARIOS",
    "CallModel",
    "Counted",
    "classify",
    "failure_cause",
    "model_picker",
    "models_of",
    "needs_warmup",
]


@dataclass(frozen=True)
class CallModel:
    """One call model: which NAS procedure, what is done to the UE first, what it needs."""

    name: str
    kind: str
    """``kmed.ue.procedure.ATTACH`` or ``TAU``."""
    report_name: str
    factory_reset_me: bool = False
    needs_kme: bool = False
    needs_guti: bool = False


CALL_MODELS: dict[str, CallModel] = {
    "attach": CallModel("attach", ATTACH, "attach", needs_kme=True),
    "provision": CallModel("provision", ATTACH, "attach_provision", factory_reset_me=True),
    "tau": CallModel("tau", TAU, "tau", needs_kme=True, needs_guti=True),
}
SCENARIOS: tuple[str, ...] = (*CALL_MODELS, "mix")


def models_of(scenario: str, weights: Mapping[str, float]) -> dict[str, float]:
    """Call model → weight for ``scenario`` (``mix`` uses ``weights``, the ``[mix]`` section)."""
    if scenario == "mix":
        out = {name: float(weights.get(name) or 0.0) for name in CALL_MODELS}
        if not any(w > 0 for w in out.values()):
            raise ValueError("[mix]: at least one weight must be positive")
        return out
    if scenario not in CALL_MODELS:
        raise ValueError(f"unknown scenario {scenario!r}: one of {', '.join(SCENARIOS)}")
    return {scenario: 1.0}


def model_picker(scenario: str, weights: Mapping[str, float], rng: random.Random) -> Callable[[], CallModel]:
    """A function returning the call model of the next arrival."""
    models = {CALL_MODELS[n]: w for n, w in models_of(scenario, weights).items() if w > 0}
    if len(models) == 1:
        only = next(iter(models))
        return lambda: only
    return WeightedChoice(models, rng).pick


def needs_warmup(scenario: str, weights: Mapping[str, float]) -> bool:
    """Whether a model of ``scenario`` needs UEs that already hold a KME (and a GUTI)."""
    return any(CALL_MODELS[n].needs_kme for n, w in models_of(scenario, weights).items() if w > 0)


@dataclass(frozen=True, slots=True)
class Counted:
    """How one outcome is counted: under ``name``, ok or not, and the error cause if not."""

    name: str
    ok: bool
    cause: str | None = None
    detail: str | None = None


def failure_cause(error: str | None) -> str:
    """The error key of a ``failed`` outcome from its text (kmed.ue.procedure / client)."""
    text = (error or "").lower()
    if "timeout" in text or "no answer" in text or "expired" in text:
        return "timeout"
    if "released by the network" in text:
        return "released"
    if any(w in text for w in ("link", "connection", "cannot reach", "error frame")):
        return "transport"
    return "protocol"


#: The successes, shared (one per procedure name: the hot path of a run).
_OK = {name: Counted(name, True) for name in ("attach", "attach_provision", "tau")}


def classify(model: CallModel, outcome: Outcome) -> Counted:
    """Count ``outcome`` of a procedure started for ``model``."""
    if outcome.result == "accepted":
        if model.kind == TAU:
            return _OK["tau"]
        if outcome.kme_provisioned:
            return _OK["attach_provision"]
        if model.factory_reset_me:
            return Counted("attach_provision", False, "no_kme_provisioned",
                           "attach accepted without provisioning a KME to a factory-reset ME")
        return _OK["attach"]
    if outcome.result == "rejected":
        if outcome.emm_cause is None:
            return Counted(model.report_name, False, "authentication_reject", outcome.error)
        cause = int(outcome.emm_cause)
        key = f"emm_cause_{cause}_{cause_name(cause).lower()}"
        return Counted(model.report_name, False, key, f"{model.kind} rejected with EMM cause #{cause}")
    return Counted(model.report_name, False, failure_cause(outcome.error), outcome.error)
