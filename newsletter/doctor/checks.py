"""The result of one check, and the shape of a rule."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from newsletter.doctor.context import DoctorContext

STATUSES = ("ok", "warn", "fail")


@dataclass(frozen=True)
class CheckResult:
    """What one rule found: status is ok, warn or fail; fix is empty when status is ok."""

    name: str
    status: str
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Rule:
    """A named check: `check` looks at the set-up and returns its result."""

    name: str
    description: str
    check: Callable[[DoctorContext], CheckResult | Sequence[CheckResult]]  # several: one each


def ok(name: str, detail: str) -> CheckResult:
    """A passing check."""
    return CheckResult(name, "ok", detail)


def warn(name: str, detail: str, fix: str) -> CheckResult:
    """Mail goes out, but something will cost deliverability or safety."""
    return CheckResult(name, "warn", detail, fix)


def fail(name: str, detail: str, fix: str) -> CheckResult:
    """Mail will be rejected, spam-foldered or lost until this is fixed."""
    return CheckResult(name, "fail", detail, fix)
