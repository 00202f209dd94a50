"""What an import reports: the plan read before anything is written (the column mapping, rows
per language) and the outcome (counts, every rejected row and warning with its line).

audience/importer.py fills them in while it streams the file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from newsletter.audience.subscribers import MergeCounts


@dataclass(frozen=True)
class RowProblem:
    """A rejected row or a warning about a fixed one, with its line in the file."""

    line: int
    email: str
    reason: str


@dataclass
class ImportReport:
    """What an import did (or, for a dry run, would do)."""

    rows: int = 0
    accepted: int = 0
    duplicates_in_file: int = 0
    rejected: list[RowProblem] = field(default_factory=list)
    warnings: list[RowProblem] = field(default_factory=list)
    merge: MergeCounts = field(default_factory=MergeCounts)
    dry_run: bool = False
    strict: bool = False
    committed: bool = False
    plan: ImportPlan | None = None
    languages: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        m = self.merge
        return {
            "rows": self.rows,
            "accepted": self.accepted,
            "rejected": len(self.rejected),
            "duplicates_in_file": self.duplicates_in_file,
            "created": m.created,
            "updated": m.updated,
            "unchanged": m.unchanged,
            "subscribed": m.subscribed,
            "confirmed": m.confirmed,
            "kept_unsubscribed": m.kept_unsubscribed,
            "dry_run": self.dry_run,
            "strict": self.strict,
            "committed": self.committed,
            "errors": [vars(p) for p in self.rejected],
            "warnings": [vars(p) for p in self.warnings],
            "columns": self.plan.columns if self.plan else {},
            "languages": dict(sorted(self.languages.items())),
            "notices": [self.plan.warning] if self.plan and self.plan.warning else [],
        }


@dataclass
class ImportPlan:
    """What the file holds, found before anything is written: the mapping, rows per language."""

    columns: dict[str, Any]
    rows: int = 0
    languages: dict[str, int] = field(default_factory=dict)
    unknown_language: int = 0
    default_language: str = ""
    list_languages: tuple[str, ...] = ()

    @property
    def defaulted(self) -> bool:
        """Every row gets the default language because the file has no language column."""
        return self.columns.get("language") is None and len(self.list_languages) > 1

    @property
    def warning(self) -> str:
        """The loud warning shown when no language column was found, or ''."""
        if not self.defaulted:
            return ""
        return (f"no language column found: all {self.rows} rows get the list's default "
                f"language {self.default_language!r} (the list offers "
                f"{', '.join(self.list_languages)}); name the column with "
                "--column language=HEADER, or use --strict to refuse such a file")


