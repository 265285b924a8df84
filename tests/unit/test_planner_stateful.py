"""The incremental planner always agrees with a full compile (Hypothesis stateful test).

Mapping changes take the fast path (element deltas computed from the change alone); everything else goes
through compile + plan. After every step, the in-memory "kernel" must equal a fresh full compile.
"""

from __future__ import annotations

import ipaddress

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from sharewall.compiler import compile_desired, plan
from sharewall.compiler.incremental import delta_for_mapping_changes
from sharewall.compiler.plan import ElementDelta, ReplaceTable
from sharewall.compiler.ruleset import Ruleset
from sharewall.errors import SharewallError
from sharewall.facts import Facts, Link
from sharewall.model.changes import Desired, MappingChange
from sharewall.model.config import Config, ConnectionConfig
from sharewall.model.mapping import make_mapping

WAN, LAN = "{0A000000-0000-4000-8000-000000000001}", "{0B000000-0000-4000-8000-000000000002}"
NAMES = [f"m{i}" for i in range(8)]
TARGETS = ["gateway", "192.168.137.12", "192.168.137.13", "alpha", "beta"]


def _links(wan_present: bool) -> dict[str, Link]:
    links = {
        "lan0": Link(index=3, name="lan0", ipv4=(ipaddress.IPv4Interface("192.168.137.1/24"),))
    }
    if wan_present:
        links["wan0"] = Link(
            index=2, name="wan0", ipv4=(ipaddress.IPv4Interface("198.51.100.1/24"),)
        )
    return links


class PlannerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        config = Config()
        config.connections[WAN] = ConnectionConfig(id=WAN, name="wan0")
        config.connections[LAN] = ConnectionConfig(id=LAN, name="lan0")
        self.desired = Desired(config)
        self.facts = Facts(links=_links(True), resolved={})
        self.kernel: Ruleset = compile_desired(config, self.facts)

    # --- the fast path ---------------------------------------------------------------------

    def _fast(self, changes: list[MappingChange]) -> None:
        delta = delta_for_mapping_changes(self.desired.config, self.facts, changes)
        delta.commands(self.kernel.sets)  # renders without error
        delta.apply_to(self.kernel)

    @rule(
        conn=st.sampled_from(["wan0", "lan0"]),
        name=st.sampled_from(NAMES),
        proto=st.sampled_from(["tcp", "udp"]),
        port=st.integers(1, 6),
        internal=st.integers(1, 3),
        dest=st.sampled_from(TARGETS),
        enabled=st.booleans(),
    )
    def add(
        self, conn: str, name: str, proto: str, port: int, internal: int, dest: str, enabled: bool
    ) -> None:
        mapping = make_mapping(
            name=name,
            protocol=proto,
            external_port=port,
            internal_port=internal,
            target=dest,
            enabled=enabled,
        )
        try:
            change = self.desired.add_mapping(conn, mapping)
        except SharewallError:
            return
        self._fast([change])

    @rule(
        conn=st.sampled_from(["wan0", "lan0"]),
        count=st.integers(1, 4),
        base=st.integers(1, 8),
        dest=st.sampled_from(TARGETS),
    )
    def import_batch(self, conn: str, count: int, base: int, dest: str) -> None:
        batch = [
            make_mapping(
                name=f"b{base}-{i}", protocol="tcp", external_port=100 + base * 10 + i, target=dest
            )
            for i in range(count)
        ]
        try:
            changes = self.desired.import_mappings(conn, batch)
        except SharewallError:
            return
        self._fast(changes)

    @rule(
        conn=st.sampled_from(["wan0", "lan0"]),
        name=st.sampled_from([*NAMES, "Web Server (HTTP)"]),
        enabled=st.booleans(),
    )
    def toggle(self, conn: str, name: str, enabled: bool) -> None:
        try:
            change = self.desired.set_mapping_enabled(conn, name, enabled)
        except SharewallError:
            return
        self._fast([change])

    @rule(conn=st.sampled_from(["wan0", "lan0"]), name=st.sampled_from(NAMES))
    def remove(self, conn: str, name: str) -> None:
        try:
            change = self.desired.remove_mapping(conn, name)
        except SharewallError:
            return
        self._fast([change])

    # --- the slow path (facts and structure) ---------------------------------------------------

    def _reconcile(self) -> None:
        desired = compile_desired(self.desired.config, self.facts)
        step = plan(self.kernel, desired)
        if isinstance(step, ReplaceTable):
            step.commands()
            self.kernel = desired.copy()
        else:
            assert isinstance(step, ElementDelta)
            step.apply_to(self.kernel)

    @rule(
        name=st.sampled_from(["alpha", "beta"]),
        address=st.sampled_from([None, "192.168.137.40", "192.168.137.41"]),
    )
    def resolve(self, name: str, address: str | None) -> None:
        resolved = dict(self.facts.resolved)
        if address is None:
            resolved.pop(name, None)
        else:
            resolved[name] = ipaddress.IPv4Address(address)
        self.facts = Facts(links=self.facts.links, resolved=resolved)
        self._reconcile()

    @rule(present=st.booleans())
    def wan_link(self, present: bool) -> None:
        self.facts = Facts(links=_links(present), resolved=self.facts.resolved)
        self._reconcile()

    @rule(on=st.booleans())
    def sharing(self, on: bool) -> None:
        if on:
            try:
                self.desired.share("wan0", ["lan0"], self.facts)
            except SharewallError:
                return
        else:
            self.desired.unshare()
        self._reconcile()

    @rule(enabled=st.booleans())
    def firewall(self, enabled: bool) -> None:
        self.desired.set_firewall("wan0", enabled)
        self._reconcile()

    @invariant()
    def kernel_equals_full_compile(self) -> None:
        full = compile_desired(self.desired.config, self.facts)
        assert self.kernel.to_json() == full.to_json()


PlannerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
TestPlanner = PlannerMachine.TestCase
