"""The ten ICF ICMP options (INetFwIcmpSettings, seed-system.md §7.5), each proven with real packets.

One lab and one sharewalld serve the whole module (wan0 shared, so firewalled); before each test the options
go back to their defaults (all denied except outbound packet-too-big). Every test toggles its option through
the API while the daemon keeps running and checks the packets before, after, and after turning it back.

Observation points:
- Inbound: the request goes from inet to the gateway's public address. A raw socket in the gateway namespace
  sees it only if the input hook accepted it; for echo and timestamp the kernel's reply at inet shows it too.
- Outbound: the gateway sends the message with a raw socket to inet out of wan0. A raw socket at inet sees
  whether it left; when the output hook drops it, the sender's ``sendto`` fails with EPERM ("blocked").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sharewall.api.client import Client
from sharewall.lab import Lab
from sharewall.model.firewall import ICMP_OPTIONS
from tests.support.daemon import Daemon
from tests.support.env import require_binary, require_root
from tests.support.icmp import Listener, new_token, send, udp_probe
from tests.support.netns import unique_prefix

pytestmark = pytest.mark.netns

# How long a listener waits: short where silence is the expected answer, generous where a packet is.
SILENCE_S = 0.6
ARRIVAL_S = 3.0

UDP_MAPPED_PORT = 4000  # mapped to the gateway itself; nothing listens there


@dataclass(frozen=True)
class IcmpLab:
    lab: Lab
    daemon: Daemon

    @property
    def client(self) -> Client:
        return self.daemon.client()

    def set_option(self, option: str, allowed: bool) -> None:
        if allowed:
            options = self.client.change_icmp("wan0", allow=[option])
        else:
            options = self.client.change_icmp("wan0", deny=[option])
        assert options[option] is allowed


@pytest.fixture(scope="module")
def icmp_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IcmpLab]:
    """One lab with a running sharewalld, wan0 shared to lan0; always torn down."""
    require_root()
    require_binary("ip")
    require_binary("nft")
    lab = Lab(prefix=unique_prefix("i"))
    workdir: Path = tmp_path_factory.mktemp("icmp-options")
    daemon = Daemon(lab.ns("gw"), workdir)
    try:
        lab.up()
        daemon.start()
        client = daemon.client()
        client.share("wan0", ["lan0"])
        client.add_mapping(
            "wan0",
            name="u",
            protocol="udp",
            external_port=UDP_MAPPED_PORT,
            internal_port=UDP_MAPPED_PORT,
        )
        # The kernel rate-limits the ICMP errors it generates (1/s per peer after a burst); the natural
        # port-unreachable case must not depend on how many errors earlier cases sent.
        lab.run("gw", "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0")
        # Resolve neighbours both ways before any negative observation (outbound echo and its reply pass).
        for address in (lab.INET, lab.INET6):
            lab.run("gw", "ping", "-n", "-q", "-c", "1", "-W", "2", address, timeout=10)
        yield IcmpLab(lab, daemon)
    finally:
        daemon.cleanup()
        lab.down()


@pytest.fixture
def env(icmp_lab: IcmpLab) -> IcmpLab:
    """The shared lab with every option back at its default and the firewall on."""
    client = icmp_lab.client
    client.set_firewall("wan0", True)
    options = client.change_icmp(
        "wan0",
        allow=["outbound_packet_too_big"],
        deny=[o for o in ICMP_OPTIONS if o != "outbound_packet_too_big"],
    )
    assert options == {o: o == "outbound_packet_too_big" for o in ICMP_OPTIONS}
    return icmp_lab


# --- observations ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inbound:
    option: str
    family: int
    type_: int
    reply_type: int | None  # the kernel answers these; the reply is a second observation point


@dataclass(frozen=True)
class Outbound:
    option: str
    family: int
    type_: int
    code: int


def inbound_seen(env: IcmpLab, case: Inbound, *, expect: bool) -> tuple[bool, bool | None]:
    """Send *case* from inet to the gateway: (arrived in the gateway, reply seen at inet or None)."""
    lab = env.lab
    token = new_token()
    wait = ARRIVAL_S if expect else SILENCE_S
    dst = lab.WAN_GW if case.family == 4 else lab.WAN_GW6
    with contextlib.ExitStack() as stack:
        arrival = stack.enter_context(
            Listener(lab.ns("gw"), case.family, case.type_, token=token, timeout=wait)
        )
        reply = None
        if case.reply_type is not None:
            reply = stack.enter_context(
                Listener(lab.ns("inet"), case.family, case.reply_type, token=token, timeout=wait)
            )
        assert send(lab.ns("inet"), case.family, case.type_, 0, dst, token) == "sent"
        arrived = arrival.result()
        if arrived is not None:
            assert arrived.endswith("checksum=ok"), arrived
        return arrived is not None, None if reply is None else reply.result() is not None


def outbound_seen(env: IcmpLab, family: int, type_: int, code: int, *, expect: bool) -> bool:
    """Send an ICMP message from the gateway to inet out of wan0: did it arrive?

    Also checks the sender's view agrees: a message the output hook dropped fails with EPERM.
    """
    lab = env.lab
    token = new_token()
    dst = lab.INET if family == 4 else lab.INET6
    wait = ARRIVAL_S if expect else SILENCE_S
    with Listener(lab.ns("inet"), family, type_, code=code, token=token, timeout=wait) as listener:
        sent = send(lab.ns("gw"), family, type_, code, dst, token)
        seen = listener.result()
    arrived = seen is not None
    if seen is not None:
        assert seen.endswith("checksum=ok"), seen
    assert sent == ("sent" if arrived else "blocked"), (sent, arrived)
    return arrived


# --- inbound ---------------------------------------------------------------------------------------

INBOUND = [
    pytest.param(Inbound("inbound_echo_request", 4, 8, 0), id="echo-v4"),
    pytest.param(Inbound("inbound_echo_request", 6, 128, 129), id="echo-v6"),
    pytest.param(Inbound("inbound_timestamp_request", 4, 13, 14), id="timestamp"),
    pytest.param(Inbound("inbound_mask_request", 4, 17, None), id="mask"),
    pytest.param(Inbound("inbound_router_request", 4, 10, None), id="router-solicitation"),
    pytest.param(Inbound("redirect", 4, 5, None), id="redirect-v4"),
    pytest.param(Inbound("redirect", 6, 137, None), id="redirect-v6"),
]


@pytest.mark.parametrize("case", INBOUND)
def test_inbound_option_opens_and_closes(env: IcmpLab, case: Inbound) -> None:
    """Denied by default; allowed, the request reaches the gateway (and is answered); denied again, not."""
    expected_reply = None if case.reply_type is None else True
    silent = (False, None if case.reply_type is None else False)
    assert inbound_seen(env, case, expect=False) == silent
    env.set_option(case.option, True)
    assert inbound_seen(env, case, expect=True) == (True, expected_reply)
    env.set_option(case.option, False)
    assert inbound_seen(env, case, expect=False) == silent


def test_untracked_inbound_types_do_reach_a_gateway_without_icf(env: IcmpLab) -> None:
    """Control for the three shadowed cases: with ICF off the same packets arrive, so the sender works."""
    env.client.set_firewall("wan0", False)
    for case in (
        Inbound("inbound_router_request", 4, 10, None),
        Inbound("redirect", 4, 5, None),
        Inbound("redirect", 6, 137, None),
    ):
        assert inbound_seen(env, case, expect=True) == (True, None), case


# --- outbound --------------------------------------------------------------------------------------

OUTBOUND = [
    pytest.param(Outbound("outbound_destination_unreachable", 4, 3, 1), id="unreachable-v4"),
    pytest.param(Outbound("outbound_destination_unreachable", 6, 1, 4), id="unreachable-v6"),
    pytest.param(Outbound("outbound_source_quench", 4, 4, 0), id="source-quench"),
    pytest.param(Outbound("outbound_parameter_problem", 4, 12, 0), id="parameter-problem-v4"),
    pytest.param(Outbound("outbound_parameter_problem", 6, 4, 0), id="parameter-problem-v6"),
    pytest.param(Outbound("outbound_time_exceeded", 4, 11, 0), id="time-exceeded-v4"),
    pytest.param(Outbound("outbound_time_exceeded", 6, 3, 0), id="time-exceeded-v6"),
    pytest.param(Outbound("redirect", 4, 5, 1), id="redirect-v4"),
    pytest.param(Outbound("redirect", 6, 137, 0), id="redirect-v6"),
    pytest.param(Outbound("outbound_packet_too_big", 6, 2, 0), id="packet-too-big-v6"),
]


@pytest.mark.parametrize("case", OUTBOUND)
def test_outbound_option_opens_and_closes(env: IcmpLab, case: Outbound) -> None:
    """The default holds; flipping the option flips what leaves wan0; flipping it back restores it."""
    default = case.option == "outbound_packet_too_big"
    pid = env.daemon.proc.pid if env.daemon.proc else None
    for allowed in (default, not default, default):
        env.set_option(case.option, allowed)
        assert outbound_seen(env, case.family, case.type_, case.code, expect=allowed) is allowed
    # Immediately, without a restart: the same daemon process did it all.
    assert env.daemon.proc is not None and env.daemon.proc.pid == pid
    assert env.daemon.proc.poll() is None


def test_frag_needed_is_never_blocked(env: IcmpLab) -> None:
    """Path-MTU discovery keeps working: IPv4 fragmentation-needed leaves even with unreachables denied."""
    assert not env.client.connection("wan0")["icmp"]["outbound_destination_unreachable"]
    assert outbound_seen(env, 4, 3, 4, expect=True)
    assert not outbound_seen(env, 4, 3, 3, expect=False)  # port unreachable, same type, is dropped
    env.set_option("outbound_destination_unreachable", True)
    assert outbound_seen(env, 4, 3, 4, expect=True)


def test_port_unreachable_from_a_mapped_udp_port(env: IcmpLab) -> None:
    """The kernel's own answer to a UDP probe of a mapped port where nothing listens follows the option."""
    lab = env.lab
    inet = lab.ns("inet")

    def answer(*, expect: bool) -> tuple[str, bool]:
        wait = ARRIVAL_S if expect else SILENCE_S
        # The listener outlives the probe a little, so a late error is still counted.
        with Listener(inet, 4, 3, code=3, timeout=wait + 0.2) as listener:
            result = udp_probe(inet, lab.WAN_GW, UDP_MAPPED_PORT, timeout=wait)
            return result, listener.result() is not None

    assert answer(expect=False) == ("timeout", False)
    env.set_option("outbound_destination_unreachable", True)
    assert answer(expect=True) == ("refused", True)
    env.set_option("outbound_destination_unreachable", False)
    assert answer(expect=False) == ("timeout", False)
