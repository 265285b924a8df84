"""Model validation: every bad input gets a clear error, and a rejected change changes nothing."""

from __future__ import annotations

import ipaddress

import pytest

from sharewall.errors import ConflictError, ErrorCode, NotFoundError, ValidationError
from sharewall.facts import Facts, Link
from sharewall.model.changes import Desired
from sharewall.model.config import Config, ConnectionConfig
from sharewall.model.firewall import IcmpSettings, change_icmp, normalize_icmp_option
from sharewall.model.mapping import (
    BUILTIN_SERVICES,
    Protocol,
    TargetKind,
    classify_target,
    make_mapping,
)


def web(**kw: object):
    fields: dict[str, object] = {
        "name": "web",
        "protocol": "tcp",
        "external_port": 8080,
        "internal_port": 80,
        "target": "192.168.137.12",
    }
    fields.update(kw)
    return make_mapping(**fields)  # type: ignore[arg-type]


def desired_with(*names: str) -> Desired:
    config = Config()
    for i, name in enumerate(names):
        cid = "{%08X-0000-4000-8000-000000000000}" % (i + 1)
        config.connections[cid] = ConnectionConfig(id=cid, name=name)
    return Desired(config)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("external_port", 0, "external port must be from 1 to 65535"),
        ("external_port", 65536, "external port must be from 1 to 65535"),
        ("internal_port", "x", "internal port must be a number"),
        ("protocol", "icmp", "protocol must be tcp or udp"),
        ("target", "999.1.1.1", "is not 'gateway', an IPv4 address or a host name"),
        ("target", "224.0.0.1", "cannot receive a port mapping"),
        ("target", "bad_name!", "is not 'gateway'"),
        ("name", "", "mapping name must be a non-empty string"),
        ("name", "a\nb", "control characters"),
    ],
)
def test_bad_mapping_fields_are_named(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        web(**{field: value})


def test_targets_are_classified() -> None:
    assert classify_target("gateway") is TargetKind.GATEWAY
    assert classify_target("192.168.137.5") is TargetKind.ADDRESS
    assert classify_target("lanhost.mshome.net") is TargetKind.HOSTNAME
    assert Protocol.parse(6) is Protocol.TCP and Protocol.parse("UDP") is Protocol.UDP


def test_internal_port_defaults_to_external() -> None:
    assert make_mapping(name="x", protocol="udp", external_port=5000).internal_port == 5000


def test_icmp_options_accept_three_spellings() -> None:
    assert normalize_icmp_option("AllowInboundEchoRequest") == "inbound_echo_request"
    assert normalize_icmp_option("inbound-echo-request") == "inbound_echo_request"
    settings = change_icmp(IcmpSettings(), allow=["redirect"], deny=["outbound-packet-too-big"])
    assert settings.redirect and not settings.outbound_packet_too_big
    with pytest.raises(ValidationError, match="unknown ICMP option"):
        normalize_icmp_option("ping")
    with pytest.raises(ValidationError, match="both allowed and denied"):
        change_icmp(IcmpSettings(), allow=["redirect"], deny=["redirect"])


def test_icmp_defaults_are_off_except_packet_too_big() -> None:
    settings = IcmpSettings()
    on = [f for f in IcmpSettings.__struct_fields__ if getattr(settings, f)]
    assert on == ["outbound_packet_too_big"]


def test_duplicate_external_port_is_refused_and_changes_nothing() -> None:
    d = desired_with("wan0")
    d.add_mapping("wan0", web())
    with pytest.raises(ConflictError) as err:
        d.add_mapping("wan0", web(name="other"))
    assert err.value.code is ErrorCode.DUPLICATE_MAPPING
    with pytest.raises(ConflictError):
        d.add_mapping("wan0", web(external_port=9090))  # same name
    assert list(d.connection("wan0").mappings) == ["web"]


def test_user_mapping_may_share_a_port_with_a_disabled_builtin_only() -> None:
    d = desired_with("wan0")
    d.add_mapping("wan0", web(name="lan web", external_port=80))
    with pytest.raises(ConflictError, match="Web Server"):
        d.set_mapping_enabled("wan0", "Web Server (HTTP)", True)
    d.set_mapping_enabled("wan0", "lan web", False)
    d.set_mapping_enabled("wan0", "Web Server (HTTP)", True)


def test_builtins_are_listed_disabled_and_cannot_be_removed() -> None:
    d = desired_with("wan0")
    conn = d.connection("wan0")
    names = [m.name for m in conn.effective_mappings()]
    assert names == [b.name for b in BUILTIN_SERVICES]
    assert not any(m.enabled for m in conn.effective_mappings())
    with pytest.raises(ConflictError) as err:
        d.remove_mapping("wan0", "FTP Server")
    assert err.value.code is ErrorCode.BUILTIN_MAPPING


def test_unknown_connection_and_mapping() -> None:
    d = desired_with("wan0")
    with pytest.raises(NotFoundError) as err:
        d.add_mapping("nope", web())
    assert err.value.code is ErrorCode.UNKNOWN_CONNECTION
    with pytest.raises(NotFoundError) as err:
        d.remove_mapping("wan0", "missing")
    assert err.value.code is ErrorCode.UNKNOWN_MAPPING


def test_import_is_all_or_nothing() -> None:
    d = desired_with("wan0")
    batch = [web(name=f"m{i}", external_port=10000 + i) for i in range(5)]
    batch.append(web(name="dup", external_port=10002))
    with pytest.raises(ConflictError, match="appears twice"):
        d.import_mappings("wan0", batch)
    assert d.connection("wan0").mappings == {}


def links(**names: str | None) -> Facts:
    result = {}
    for i, (name, cidr) in enumerate(names.items()):
        ipv4 = (ipaddress.IPv4Interface(cidr),) if cidr else ()
        result[name] = Link(index=i + 1, name=name, up=True, carrier=True, ipv4=ipv4)
    return Facts(links=result)


def test_share_assigns_192_168_137_1_then_next_network() -> None:
    d = desired_with("wan0", "lan0", "lan1")
    facts = links(wan0="198.51.100.1/24", lan0=None, lan1=None)
    change = d.share("wan0", ["lan0", "lan1"], facts)
    assert change.addresses_to_add == {"lan0": "192.168.137.1/24", "lan1": "192.168.138.1/24"}
    assert d.connection("wan0").firewall is True  # public sharing turns ICF on


def test_share_skips_networks_in_use_and_keeps_existing_addresses() -> None:
    d = desired_with("wan0", "lan0", "lan1")
    facts = links(wan0="192.168.137.7/24", lan0="10.1.2.1/24", lan1=None)
    change = d.share("wan0", ["lan0", "lan1"], facts)
    assert change.addresses_to_add == {"lan1": "192.168.138.1/24"}


def test_share_replaces_the_previous_public_and_unshare_undoes_addresses() -> None:
    d = desired_with("wan0", "wan1", "lan0")
    facts = links(wan0="198.51.100.1/24", wan1="203.0.113.1/24", lan0=None)
    d.share("wan0", ["lan0"], facts, ip_forward_now=0)
    d.share("wan1", ["lan0"], facts, ip_forward_now=1)
    assert d.config.sharing.public == d.connection("wan1").id
    assert d.config.sharing.saved_ip_forward == 0  # the value from before sharing began
    change = d.unshare()
    assert change.addresses_to_remove == {"lan0": "192.168.137.1/24"}
    assert not d.config.sharing.active


@pytest.mark.parametrize(
    ("public", "private", "kw", "error"),
    [
        ("wan0", ["wan0"], {}, "both the public and a private"),
        ("wan0", [], {}, "at least one private"),
        ("wan0", ["lan0"], {"private_address": "8.8.8.1/24"}, "not a private"),
        ("wan0", ["lan0"], {"private_address": "192.168.1.1/31"}, "prefix from /8 to /30"),
        ("wan0", ["lan0"], {"private_address": "nonsense"}, "not an IPv4 address"),
    ],
)
def test_bad_share_requests(
    public: str, private: list[str], kw: dict[str, str], error: str
) -> None:
    d = desired_with("wan0", "lan0")
    before = d.config.sharing
    with pytest.raises((ValidationError, ConflictError), match=error):
        d.share(public, private, links(wan0="198.51.100.1/24", lan0=None), **kw)  # type: ignore[arg-type]
    assert d.config.sharing is before


def test_connection_refs_by_id_and_name() -> None:
    d = desired_with("wan0")
    conn = d.connection("wan0")
    assert d.connection(conn.id) is conn
    assert d.connection(conn.id.strip("{}").lower()) is conn


def test_register_link_keeps_ids_across_renames_by_mac() -> None:
    d = Desired(Config())
    a = d.register_link(Link(index=1, name="eth0", mac="02:00:00:00:00:01"), "{A}")
    b = d.register_link(Link(index=1, name="wan", mac="02:00:00:00:00:01"), "{B}")
    assert a is b and a.name == "wan" and a.id == "{A}"
    c = d.register_link(Link(index=2, name="eth0", mac="02:00:00:00:00:02"), "{C}")
    assert c.id == "{C}"
