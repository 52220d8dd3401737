"""Token buckets on trio's MockClock: exact refill, burst, retry-after, and a bounded table.

Every test takes pytest-trio's ``autojump_clock`` fixture directly, so ``trio.sleep`` moves
the clock exactly and ``trio.current_time()`` is the only time there is.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from mcpd.limits.buckets import BucketTable
from mcpd.limits.limiter import Limits
from mcpd.limits.names import LimitName
from mcpd.limits.settings import LimitsSettings, ToolRule
from mcpd.protocol.errors import LimitExceeded


def limits(rejected: list[LimitName] | None = None, **settings: object) -> Limits:
    record = rejected.append if rejected is not None else (lambda limit: None)
    return Limits(LimitsSettings.model_validate(settings), on_reject=record)


def refusal(call: object) -> LimitExceeded:
    assert callable(call)
    with pytest.raises(LimitExceeded) as caught:
        call()
    return caught.value


async def test_burst_then_exact_refill(autojump_clock: trio.testing.MockClock) -> None:
    rejected: list[LimitName] = []
    lim = limits(rejected, requests_per_second=2, burst=4)
    for _ in range(4):
        lim.check_request("alice", "tools/call")  # the burst: four at once
    error = refusal(lambda: lim.check_request("alice", "tools/call"))
    assert error.limit == "principal_rate"
    assert error.retry_after == 0.5  # one token at 2 per second
    assert rejected == ["principal_rate"]

    await trio.sleep(0.25)  # half a token: still refused, and told the rest
    assert refusal(lambda: lim.check_request("alice", "tools/call")).retry_after == 0.25
    await trio.sleep(0.25)
    lim.check_request("alice", "tools/call")  # exactly one token came back
    refusal(lambda: lim.check_request("alice", "tools/call"))

    await trio.sleep(10)  # refills up to the burst, not beyond
    for _ in range(4):
        lim.check_request("alice", "tools/call")
    refusal(lambda: lim.check_request("alice", "tools/call"))


async def test_a_refused_request_takes_nothing(autojump_clock: trio.testing.MockClock) -> None:
    lim = limits(requests_per_second=1, burst=1)
    lim.check_request("alice", "ping")
    for _ in range(50):  # hammering while refused does not push the retry further out
        assert refusal(lambda: lim.check_request("alice", "ping")).retry_after == 1.0
    await trio.sleep(1)
    lim.check_request("alice", "ping")


async def test_principals_have_their_own_buckets(autojump_clock: trio.testing.MockClock) -> None:
    lim = limits(requests_per_second=1, burst=2)
    lim.check_request("alice", "tools/list")
    lim.check_request("alice", "tools/list")
    refusal(lambda: lim.check_request("alice", "tools/list"))
    lim.check_request("bob", "tools/list")
    lim.check_request("bob", "tools/list")


async def test_handshakes_have_a_bucket_of_their_own(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lim = limits(requests_per_second=100, burst=100, handshakes_per_second=0.5, handshake_burst=2)
    lim.check_request("mallory", "initialize")
    lim.check_request("mallory", "server/discover")  # the same bucket as initialize
    error = refusal(lambda: lim.check_request("mallory", "initialize"))
    assert error.limit == "handshake_rate"
    assert error.retry_after == 2.0
    assert error.retry_after_seconds == 2
    lim.check_request("mallory", "tools/call")  # other requests are not held up
    await trio.sleep(2)
    lim.check_request("mallory", "initialize")


async def test_zero_rate_is_off(autojump_clock: trio.testing.MockClock) -> None:
    lim = limits(requests_per_second=0, handshakes_per_second=0)
    for _ in range(10_000):
        lim.check_request("alice", "tools/call")
        lim.check_request("alice", "initialize")
    assert lim.statistics().buckets == 0


async def test_tool_rules_first_match_per_tool_per_principal(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rejected: list[LimitName] = []
    lim = limits(
        rejected,
        tools=[
            {"tools": ["search_web"], "rate": 0.25},  # burst defaults to ceil(rate) = 1
            {"tools": ["search_*", "glob"], "rate": 4, "burst": 2},
        ],
    )
    lim.check_tool("alice", "search_web")
    error = refusal(lambda: lim.check_tool("alice", "search_web"))
    assert (error.limit, error.retry_after) == ("tool_rate", 4.0)
    assert "search_web" in error.message
    lim.check_tool("bob", "search_web")  # per principal

    for tool in ("search_files", "glob"):  # one rule, but a budget per tool
        lim.check_tool("alice", tool)
        lim.check_tool("alice", tool)
        assert refusal(lambda tool=tool: lim.check_tool("alice", tool)).retry_after == 0.25
    lim.check_tool("alice", "echo")  # no rule, no limit
    assert rejected == ["tool_rate"] * 3


def test_rule_burst_defaults_to_a_seconds_worth() -> None:
    assert ToolRule(tools=("a",), rate=0.1).capacity == 1
    assert ToolRule(tools=("a",), rate=2.5).capacity == 3
    assert ToolRule(tools=("a",), rate=2.5, burst=10).capacity == 10


async def test_reconfigure_keeps_buckets_and_applies_new_rates(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lim = limits(requests_per_second=1, burst=3)
    for _ in range(3):
        lim.check_request("alice", "ping")
    lim.reconfigure(LimitsSettings(requests_per_second=4, burst=3))
    assert refusal(lambda: lim.check_request("alice", "ping")).retry_after == 0.25  # no reset
    lim.reconfigure(LimitsSettings(requests_per_second=0))
    lim.check_request("alice", "ping")  # turned off


async def test_refilled_buckets_are_forgotten(autojump_clock: trio.testing.MockClock) -> None:
    lim = limits(requests_per_second=1, burst=2)
    for name in ("a", "b", "c"):
        lim.check_request(name, "ping")
    assert lim.statistics().buckets == 3
    await trio.sleep(1)  # one token each: they are full again
    lim.check_request("d", "ping")
    assert lim.statistics().buckets == 1  # only d's


async def test_table_size_is_bounded_least_recently_used_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    table = BucketTable(max_size=3)
    now = trio.current_time()
    for key in ("a", "b", "c"):
        assert table.take(key, now, rate=1.0, burst=1) == 0.0
    assert table.take("a", now, rate=1.0, burst=1) == 1.0  # a is now the most recent
    assert table.take("d", now, rate=1.0, burst=1) == 0.0
    assert len(table) == 3
    assert "b" not in table  # the least recently used went
    assert all(key in table for key in ("a", "c", "d"))


async def test_many_principals_stay_within_the_bound(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lim = limits(requests_per_second=1, burst=5, max_tracked=100)
    for n in range(10_000):
        lim.check_request(f"10.0.{n // 256}.{n % 256}", "ping")
        assert lim.statistics().buckets <= 100
    assert lim.statistics().buckets == 100


async def test_a_lowered_bound_applies_at_the_next_new_bucket(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lim = limits(requests_per_second=1, burst=5, max_tracked=50)
    for n in range(50):
        lim.check_request(f"p{n}", "ping")
    lim.reconfigure(LimitsSettings(requests_per_second=1, burst=5, max_tracked=10))
    lim.check_request("newcomer", "ping")
    assert lim.statistics().buckets == 10
