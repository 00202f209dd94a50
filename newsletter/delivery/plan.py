"""Pure decisions taken before a send: which edition each subscriber gets, may we send at all.

Nothing here touches the database, SMTP or the clock; the queue and the CLI pass plain counts in
and act on the plain answers that come out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from newsletter.delivery.errors import SendError


@dataclass(frozen=True)
class LanguagePlan:
    """Subscriber language -> edition language, with the counts the editor confirms."""

    mapping: dict[str, str]
    recipients: dict[str, int]  # edition language -> recipients
    fallbacks: dict[str, int] = field(default_factory=dict)  # subscriber language -> count

    @property
    def total(self) -> int:
        return sum(self.recipients.values())


def plan_languages(
    counts: Mapping[str, int],
    issue_languages: Sequence[str],
    fallback: str | None = None,
) -> LanguagePlan:
    """Fix each subscriber language to an edition, or block listing the missing ones.

    `counts` maps a subscriber's language (already defaulted to the list's language when the
    subscriber has none) to how many recipients speak it. A language the issue lacks blocks the
    send unless the editor named a fallback: nobody silently gets a language they did not choose.
    """
    available = set(issue_languages)
    if fallback is not None and fallback not in available:
        have = ", ".join(sorted(available)) or "none"
        raise SendError(f"--fallback-language {fallback}: the issue has no {fallback} edition "
                        f"(it has: {have})")
    missing = {lang: n for lang, n in counts.items() if lang not in available and n > 0}
    if missing and fallback is None:
        listing = ", ".join(f"{n} in {lang}" for lang, n in sorted(missing.items()))
        raise SendError(
            f"the issue lacks languages that subscribers chose ({listing}): add the translation "
            f"or pass --fallback-language LANG"
        )
    mapping: dict[str, str] = {}
    recipients: dict[str, int] = {}
    for lang, n in counts.items():
        target = lang if lang in available else (fallback or lang)
        mapping[lang] = target
        recipients[target] = recipients.get(target, 0) + n
    return LanguagePlan(mapping=mapping, recipients=recipients, fallbacks=missing)


def check_resend(status: str | None, mailed: int, force: bool) -> None:
    """Refuse to mail a list again with an issue it already got, unless the editor forces it."""
    if status == "sent" and not force:
        raise SendError(
            f"this issue was already sent ({mailed} delivered): pass --force to mail only "
            f"subscribers who have not received it"
        )
    if status == "cancelled":
        raise SendError("this issue was cancelled")


def backoff(attempts: int, base: float, cap: float = 6 * 3600.0) -> float:
    """Seconds before retry number `attempts` (1-based): base, 2*base, 4*base ... capped."""
    return min(cap, base * (2 ** max(0, attempts - 1)))
