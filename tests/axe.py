"""axe-core in real Chromium: load npm's axe.min.js from .cache/axe and report violations.

scripts/system-deps.sh installs axe-core there (npm, outside the repository); the tests read the
file and inject it into each page, so nothing is fetched at test time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import CHROMIUM_ARGS, require_file

AXE = Path(__file__).resolve().parents[1] / ".cache/axe/node_modules/axe-core/axe.min.js"
FAILING = ("moderate", "serious", "critical")
ARGS = CHROMIUM_ARGS
RUN = """async (off) => {
  const rules = Object.fromEntries(off.map(id => [id, {enabled: false}]));
  const result = await axe.run(document, {resultTypes: ['violations'], rules});
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
}"""


def axe_source() -> str:
    """The axe-core script, or a missing part (skip, or fail with every part required)."""
    how = "run scripts/system-deps.sh: npm install --prefix .cache/axe axe-core@4"
    return require_file(AXE, how).read_text(encoding="utf-8")


def violations(page: Any, source: str, off: tuple[str, ...] = ()) -> list[str]:
    """Violations of moderate impact or worse on the page: 'rule-id (impact): target, ...'."""
    page.add_script_tag(content=source)
    found = page.evaluate(RUN, list(off))
    return [f"{v['id']} ({v['impact']}, {v['help']}): {'; '.join(v['targets'])}"
            for v in found if v["impact"] in FAILING]


def assert_accessible(page: Any, source: str, what: str, off: tuple[str, ...] = ()) -> None:
    """Fail listing every moderate-or-worse axe violation of the page (rules in `off` not run)."""
    found = violations(page, source, off)
    assert not found, f"axe finds on {what}:\n" + "\n".join(found)
