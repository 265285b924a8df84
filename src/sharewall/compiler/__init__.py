"""Pure compiler: (Config, Facts) -> desired nftables ruleset; and the planner that diffs two of them."""

from sharewall.compiler.gateway import compile_desired, compile_structure
from sharewall.compiler.plan import ElementDelta, Plan, ReplaceTable, plan

__all__ = ["ElementDelta", "Plan", "ReplaceTable", "compile_desired", "compile_structure", "plan"]
