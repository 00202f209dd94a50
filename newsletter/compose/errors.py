"""The composer's error: always names the file (and the line when known) the editor must fix."""

from __future__ import annotations

from pathlib import Path

from newsletter.errors import NewsletterError


class ComposeError(NewsletterError):
    """Bad Markdown, front matter, template or missing variable in an issue."""

    def __init__(
        self, message: str, file: Path | str | None = None, line: int | None = None,
        rule: str = "markdown-error",
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.rule = rule
        super().__init__(self.where() + message)

    def where(self) -> str:
        """`file:line: ` prefix, as compilers print it."""
        if not self.file:
            return ""
        return f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
