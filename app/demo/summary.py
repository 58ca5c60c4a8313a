"""What the demo built and what the user reads at the end: the URL, the logins, the invite
links, the models' numbers and where the time went."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.demo.accounts import Login

ARM_NAMES = {"standard": "standard model", "dual": "dual-BN model"}


@dataclass
class DemoResult:
    """What the demo built and how long each step took (seconds; 0 when reused)."""

    study_id: int
    study_name: str
    base_url: str
    logins: list[Login]
    evaluation: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)
    attribution: str = ""


def format_summary(result: DemoResult) -> str:
    """What the user needs next: the URL, the logins, the invite links, the numbers."""
    lines = [
        "",
        f"radsal demo is ready: study #{result.study_id} '{result.study_name}' is open.",
        "",
        f"  Open {result.base_url}/login and log in as:",
    ]
    for login in result.logins:
        if login.password:
            lines.append(f"    {login.role:<11} {login.username:<11} password {login.password}")
        elif not login.invite_url:
            lines.append(f"    {login.role:<11} {login.username:<11} ({login.note})")
    invites = [x for x in result.logins if x.invite_url]
    if invites:
        lines += ["", "  Raters: open your invite link, choose a password, start rating:"]
        lines += [f"    {x.username:<11} {x.invite_url}" for x in invites]
    if result.evaluation:
        lines += ["", "  Models (validation AUROC, clean / under attack):"]
        for arm in sorted(result.evaluation, key=lambda a: (a != "standard", a)):
            numbers = result.evaluation[arm]
            lines.append(
                f"    {ARM_NAMES.get(arm, arm):<15} {_num(numbers.get('auroc_clean'))} / "
                f"{_num(numbers.get('auroc_attack'))}"
            )
    built = [f"{k} {v:.0f} s" for k, v in result.timings.items() if v >= 0.5]
    total = sum(result.timings.values())
    lines += ["", f"  Built in {total:.0f} s" + (f" ({', '.join(built)})." if built else ".")]
    if result.reused:
        lines.append(f"  Reused from an earlier run: {', '.join(result.reused)}.")
    if result.attribution:
        lines += ["", f"  {result.attribution}"]
    return "\n".join(lines)


def _num(value: Any) -> str:
    return f"{float(value):.3f}" if isinstance(value, int | float) else "n/a"
