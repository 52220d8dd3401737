"""Asking the client for input on stateless 2026-07-28 requests (multi-round-trip requests).

A handler that needs an answer (``ctx.elicit``, ``ctx.sample``, ``ctx.list_roots``) is
stopped with ``InputRequired``; the client gets an ``input_required`` result naming the
question and an opaque ``requestState``, and retries the same request with the answer. The
handler then runs again from the start, and each question it asks is answered from the
retry, in order, until it needs one more answer or finishes.

The daemon keeps nothing between rounds: everything is in ``requestState``, sealed with an
HMAC. The seal binds the method, a digest of the parameters, an expiry and a one-time nonce;
each state opens once. The answers of earlier rounds ride along inside the state, so they are
covered by the seal too.

The key is ``[tools] request_state_key`` when configured, else the one kept in the state
directory (``mcpd.persist.keyring``), else a random one for this process. Keys retired by a
rotation still open the states they sealed until those expire. The used nonces can be taken
out (``spent``) and put back (``restore_spent``), so that single use holds across a restart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import orjson

from mcpd.protocol.errors import InvalidParams, ServerUnavailable

# Parameters that change between the rounds of one logical request.
ROUND_KEYS: Final = frozenset({"_meta", "inputResponses", "requestState"})
# Bound on remembered one-time nonces; expired ones are dropped first.
MAX_SPENT: Final = 100_000
STATE_VERSION: Final = 1


class ServerBusy(ServerUnavailable):
    """The table of used states is full of live ones; the retry is refused (not forgotten)."""


class InputRequired(BaseException):
    """Raised inside a handler whose questions have no answers yet in this round.

    A ``BaseException``, so ``except Exception`` in plugin code does not swallow it.
    ``requests`` is the ``inputRequests`` map: key -> ``{"method", "params"}``.
    """

    def __init__(self, requests: dict[str, dict[str, Any]]) -> None:
        super().__init__(", ".join(requests))
        self.requests = requests


def input_required_in(error: BaseException) -> InputRequired | None:
    """The questions ``error`` carries: an ``InputRequired``, or a group made only of them
    (a handler that asked in several tasks of a nursery); None for anything else."""
    if isinstance(error, InputRequired):
        return error
    if isinstance(error, BaseExceptionGroup):
        matched, rest = error.split(InputRequired)
        if matched is not None and rest is None:
            requests: dict[str, dict[str, Any]] = {}
            for leaf in _leaves(matched):
                requests.update(leaf.requests)
            return InputRequired(requests)
    return None


def _leaves(group: BaseExceptionGroup[InputRequired]) -> list[InputRequired]:
    found: list[InputRequired] = []
    for item in group.exceptions:
        if isinstance(item, BaseExceptionGroup):
            found += _leaves(item)
        else:
            found.append(item)
    return found


class RequestStates:
    """Seals and opens ``requestState`` tokens; remembers which have been used.

    ``previous``: retired keys, each with the (wall-clock) time after which it no longer
    opens anything.
    """

    def __init__(
        self,
        ttl: float,
        *,
        key: bytes | None = None,
        previous: Sequence[tuple[bytes, float]] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)
        self._previous = tuple(previous)
        self._ttl = ttl
        self._clock = clock
        self._spent: dict[str, float] = {}  # nonce -> expiry

    def use_keys(self, key: bytes, previous: Sequence[tuple[bytes, float]] = ()) -> None:
        """Seal with ``key`` from now on; ``previous`` keys still open what they sealed."""
        self._key = key
        self._previous = tuple(previous)

    def spent(self) -> dict[str, float]:
        """The used nonces that have not expired, with their expiry."""
        now = self._clock()
        return {nonce: expiry for nonce, expiry in self._spent.items() if expiry >= now}

    def restore_spent(self, nonces: Mapping[str, float]) -> int:
        """Remember ``nonces`` as used (those not yet expired, up to the bound); how many."""
        now = self._clock()
        room = MAX_SPENT - len(self._spent)
        live = sorted(((e, n) for n, e in nonces.items() if e >= now), reverse=True)[:room]
        self._spent.update((nonce, expiry) for expiry, nonce in live)
        return len(live)

    def seal(
        self, method: str, params: dict[str, Any], answers: dict[str, Any], principal: str = ""
    ) -> str:
        """A token carrying ``answers``, valid only for this request of ``principal`` (its
        stable key: a state is never accepted from another caller)."""
        payload = {
            "v": STATE_VERSION,
            "m": method,
            "d": params_digest(params),
            "p": principal,
            "e": self._clock() + self._ttl,
            "n": secrets.token_urlsafe(12),
            "a": answers,
        }
        body = orjson.dumps(payload)
        return _b64(body) + "." + _b64(_mac(self._key, body))

    def open(
        self, token: object, method: str, params: dict[str, Any], principal: str = ""
    ) -> dict[str, Any]:
        """The answers of earlier rounds carried by ``token``; ``InvalidParams`` if the token
        is forged, altered, for another request or another principal, expired or used."""
        if not isinstance(token, str) or token.count(".") != 1:
            raise InvalidParams("requestState is not one this server issued")
        encoded_body, encoded_mac = token.split(".")
        try:
            body = _unb64(encoded_body)
            mac = _unb64(encoded_mac)
        except (binascii.Error, ValueError):
            raise InvalidParams("requestState is not one this server issued") from None
        if not self._authentic(body, mac):
            raise InvalidParams("requestState failed its integrity check")
        payload = orjson.loads(body)
        if payload.get("v") != STATE_VERSION:
            raise InvalidParams("requestState has an unknown version")
        if payload["m"] != method or payload["d"] != params_digest(params):
            raise InvalidParams("requestState belongs to a different request")
        if payload.get("p", "") != principal:
            raise InvalidParams("requestState belongs to a different request")
        now = self._clock()
        if payload["e"] < now:
            raise InvalidParams("requestState has expired; send the request again without it")
        self._spend(payload["n"], payload["e"], now)
        answers = payload["a"]
        return answers if isinstance(answers, dict) else {}

    def _spend(self, nonce: str, expiry: float, now: float) -> None:
        if nonce in self._spent:
            raise InvalidParams("requestState was already used")
        if len(self._spent) >= MAX_SPENT:
            self._spent = {n: e for n, e in self._spent.items() if e >= now}
            if len(self._spent) >= MAX_SPENT:
                # Forgetting a live nonce would let its state be used twice: refuse instead
                # (an overload: that many retries within one input_timeout_seconds).
                raise ServerBusy("too many input rounds in flight; try again shortly")
        self._spent[nonce] = expiry

    def _authentic(self, body: bytes, mac: bytes) -> bool:
        if hmac.compare_digest(mac, _mac(self._key, body)):
            return True
        now = self._clock()
        return any(
            until > now and hmac.compare_digest(mac, _mac(key, body))
            for key, until in self._previous
        )


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()


class InputRound:
    """The answers one round of a request can draw on, handed out in asking order."""

    __slots__ = ("_answers", "_asked")

    def __init__(self, answers: dict[str, Any]) -> None:
        self._answers = answers
        self._asked = 0

    @property
    def answers(self) -> dict[str, Any]:
        return self._answers

    def answer(self, questions: list[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """The answers to ``(key, method, params)`` questions, or ``InputRequired`` naming
        those that have none yet.

        Keys are the handler's (``key=``) or positional: ``q0``, ``q1``... counted over the
        whole request, so the same code asks the same keys in every round.
        """
        missing: dict[str, dict[str, Any]] = {}
        answers: list[dict[str, Any]] = []
        for key, method, params in questions:
            self._asked += 1
            answer = self._answers.get(key)
            if isinstance(answer, dict):
                answers.append(answer)
            else:
                missing[key] = {"method": method, "params": params}
        if missing:
            raise InputRequired(missing)
        return answers

    @classmethod
    def start(
        cls, states: RequestStates, method: str, params: dict[str, Any], principal: str = ""
    ) -> InputRound:
        """Round one, or a later round from the retry's ``requestState`` and answers."""
        token = params.get("requestState")
        responses = params.get("inputResponses")
        # Earlier rounds' answers only come from a sealed state; this round's answers are the
        # client's own and need none (an answer that is not an object is asked again).
        answers = {} if token is None else dict(states.open(token, method, params, principal))
        if responses is not None and not isinstance(responses, dict):
            raise InvalidParams("inputResponses must be an object")
        for key, value in (responses or {}).items():
            if isinstance(value, dict):
                answers[key] = value
        return cls(answers)


def params_digest(params: dict[str, Any]) -> str:
    """A digest of what identifies a request across its rounds."""
    stable = {key: value for key, value in params.items() if key not in ROUND_KEYS}
    return hashlib.sha256(orjson.dumps(stable, option=orjson.OPT_SORT_KEYS)).hexdigest()


def input_required_result(
    states: RequestStates,
    method: str,
    params: dict[str, Any],
    need: InputRequired,
    answers: dict[str, Any],
    *,
    principal: str = "",
) -> dict[str, Any]:
    return {
        "resultType": "input_required",
        "inputRequests": need.requests,
        "requestState": states.seal(method, params, answers, principal),
    }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
