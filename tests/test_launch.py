"""Every asynchronous backend's launch keeps the ``Launch`` protocol the supervisor is typed
against: each member there, as a method with a compatible signature (or a property, or an
attribute its constructor sets). Read from the classes; nothing is started (Ray need not be
installed)."""

from __future__ import annotations

import inspect
import re

import pytest

from a3c_jax.drivers.asynchronous.backends.launch import Launch
from a3c_jax.drivers.asynchronous.backends.processes import ProcessLaunch
from a3c_jax.drivers.asynchronous.backends.ray_actors import RayLaunch
from a3c_jax.drivers.asynchronous.backends.threads import ThreadLaunch

BACKENDS = (ThreadLaunch, ProcessLaunch, RayLaunch)


def members(proto) -> dict[str, object]:
    """The protocol's own members: methods and properties by name, annotated attributes."""
    own = {k: v for k, v in vars(proto).items() if not k.startswith("_")}
    return {**{k: None for k in proto.__annotations__}, **own}


def signature_mismatch(want, got) -> str | None:
    """Why ``got`` cannot stand for ``want``: a parameter of ``want`` missing, of another kind
    or newly without a default; or an extra parameter of ``got`` without a default."""
    want_ps = list(inspect.signature(want).parameters.values())
    got_ps = inspect.signature(got).parameters
    for p in want_ps:
        q = got_ps.get(p.name)
        if q is None:
            return f"no parameter {p.name!r}"
        if q.kind != p.kind:
            return f"parameter {p.name!r} is {q.kind.description}, not {p.kind.description}"
        if p.default is not inspect.Parameter.empty and q.default is inspect.Parameter.empty:
            return f"parameter {p.name!r} lost its default"
    names = {p.name for p in want_ps}
    extra = [q.name for q in got_ps.values() if q.name not in names
             and q.default is inspect.Parameter.empty
             and q.kind not in (q.VAR_POSITIONAL, q.VAR_KEYWORD)]
    return f"extra required parameters {extra}" if extra else None


def mismatches(cls, proto=Launch) -> list[str]:
    """What ``cls`` lacks of ``proto``; an empty list when it keeps the protocol."""
    out = []
    for name, want in members(proto).items():
        got = inspect.getattr_static(cls, name, None)
        if got is None or got is inspect.getattr_static(proto, name, None):
            if want is None and re.search(rf"self\.{name}\b[^=\n]*=",
                                          inspect.getsource(cls.__init__)):
                continue   # an attribute the constructor sets
            out.append(f"{name}: not defined by {cls.__name__}")
        elif isinstance(want, property):
            if not isinstance(got, property):
                out.append(f"{name}: not a property")
        elif callable(want):
            why = signature_mismatch(want, got) if callable(got) else "not a method"
            if why:
                out.append(f"{name}: {why}")
    return out


def test_the_protocol_states_every_member_the_supervisor_uses():
    assert set(members(Launch)) == {"final_store", "poll", "T", "stop", "store_state", "close"}
    for name, member in members(Launch).items():
        if member is not None:   # a method or property says its contract
            assert inspect.getdoc(member), name


@pytest.mark.parametrize("cls", BACKENDS, ids=lambda c: c.__name__)
def test_every_backend_keeps_the_launch_protocol(cls):
    assert Launch in cls.__mro__            # named: a type checker holds it to the protocol
    assert mismatches(cls) == []


def test_the_check_finds_a_backend_that_breaks_the_protocol():
    class Broken(Launch):
        def __init__(self):
            self.final_store = None

        def poll(self, timeout, extra):      # a new required parameter
            return False

        T = 0                                # not a property

        def stop(self, *, now):              # a required keyword-only parameter
            pass

        def close(self) -> tuple:
            return None, {}, 0

    got = mismatches(Broken)
    assert [m.split(":")[0] for m in got] == ["poll", "T", "stop", "store_state"]
    assert "extra required parameters ['extra']" in got[0]
    assert "not defined by Broken" in got[3]      # inherited from the protocol is not kept
