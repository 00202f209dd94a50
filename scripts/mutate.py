"""Mutation testing of the critical modules with mutmut, one module at a time.

    .venv/bin/python scripts/mutate.py                      # every module below
    .venv/bin/python scripts/mutate.py newsletter/tokens.py # some of them
    MUTATE_BACKENDS=sqlite ...                              # on SQLite only, whatever the module

Each module runs in its own scratch copy under build/mutate/<name>/ (mutmut reads its settings
from the pyproject.toml of the folder it runs in, and copies the code to mutants/ there), with
only the tests that exercise that module, on SQLite unless the module needs PostgreSQL, at low
CPU priority. Tests that start the sender in a subprocess are left out: a subprocess imports
the unmutated code. The score per module is printed and written to build/mutate/scores.json;
docs/testing.md records the figures and the surviving mutants judged harmless.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "mutate"
MUTMUT = str(Path(sys.executable).with_name("mutmut"))

IMPORT_TESTS = [
    "tests/audience/test_import.py", "tests/audience/test_import_duplicates.py",
    "tests/audience/test_import_columns.py", "tests/audience/test_import_report.py",
    "tests/cli/test_audience_cli.py", "tests/security/test_hostile_csv.py"]

# module -> (tests that exercise it, database engines to run them on)
MODULES: dict[str, tuple[list[str], str]] = {
    "newsletter/tokens.py": (["tests/test_tokens.py", "tests/test_tokens_contract.py"], "sqlite"),
    # Service-level tests only: mutmut runs every selected test that reaches a function for
    # each of its mutants, and nearly every bounce test reaches apply_report; the receiver and
    # poison tests (SMTP, mailboxes, a parser subprocess) made the module too slow to finish.
    # test_apply.py checks directly what they checked of the policy.
    "newsletter/bounces/policy.py": (
        ["tests/bounces/test_apply.py", "tests/bounces/test_policy.py",
         "tests/bounces/test_records.py"], "sqlite"),
    "newsletter/audience/importer.py": (IMPORT_TESTS, "sqlite"),
    # Moved out of importer.py with its tests: the per-row rules and what the import reports.
    "newsletter/audience/importrows.py": (IMPORT_TESTS, "sqlite"),
    "newsletter/audience/importreport.py": (IMPORT_TESTS, "sqlite"),
    "newsletter/audience/preferences.py": (
        ["tests/audience/test_leave.py", "tests/audience/test_preferences_reads.py",
         "tests/audience/test_preferences_service.py", "tests/web/test_preferences.py",
         "tests/web/test_unsubscribe.py", "tests/web/test_manage.py"],
        # AsyncHotReads serves the pages on PostgreSQL only: an SQLite run cannot reach it.
        "sqlite,postgresql"),
    # Moved out of preferences.py with the same tests: the fast reads of the same page.
    "newsletter/audience/hotreads.py": (
        ["tests/audience/test_leave.py", "tests/audience/test_preferences_reads.py",
         "tests/audience/test_preferences_service.py", "tests/web/test_preferences.py",
         "tests/web/test_unsubscribe.py", "tests/web/test_manage.py"],
        "sqlite,postgresql"),
    # The state machine: set_status came from optin.py, the leaves from preferences.py, the
    # bulk merge from subscribers.py; the tests of each, with the workflow's own.
    "newsletter/audience/subscriptions.py": (
        ["tests/audience/test_subscriptions.py", "tests/audience/test_leave.py",
         "tests/audience/test_preferences_service.py", "tests/web/test_unsubscribe.py",
         "tests/audience/test_optin.py", "tests/audience/test_confirm_optin.py",
         "tests/web/test_subscribe.py", "tests/web/test_confirm.py",
         "tests/audience/test_import.py", "tests/web/test_invite.py"], "sqlite"),
    # record_event and RequestMeta came from optin.py, insert_events (with its PostgreSQL half)
    # from preferences.py.
    "newsletter/audience/audit.py": (
        ["tests/audience/test_optin.py", "tests/audience/test_confirm_optin.py",
         "tests/audience/test_leave.py", "tests/audience/test_preferences_service.py",
         "tests/web/test_unsubscribe.py"], "sqlite,postgresql"),
    # The confirmation and welcome mails, moved out of optin.py with its tests.
    "newsletter/audience/notices.py": (
        ["tests/audience/test_optin.py", "tests/audience/test_confirm_optin.py",
         "tests/web/test_subscribe.py", "tests/web/test_confirm.py", "tests/web/test_limits.py",
         "tests/web/test_mails.py", "tests/web/test_outbox.py", "tests/web/test_same_work.py",
         "tests/audience/test_erasure.py"], "sqlite"),
    "newsletter/audience/optin.py": (
        # The web answers first and subscribes in a job after (audience/jobs.py): the service
        # tests call subscribe(), confirm() and the jobs directly, test_same_work runs the jobs.
        ["tests/audience/test_optin.py", "tests/audience/test_confirm_optin.py",
         "tests/web/test_subscribe.py", "tests/web/test_confirm.py", "tests/web/test_limits.py",
         "tests/web/test_mails.py", "tests/web/test_outbox.py", "tests/web/test_same_work.py",
         "tests/audience/test_erasure.py"], "sqlite"),
    "newsletter/delivery/pool.py": (["tests/delivery/test_pool_unit.py"], "sqlite"),
    # In-process tests only; SKIP LOCKED and hash_expr's PostgreSQL half need PostgreSQL. The
    # claims, intents and outcomes stay in queue.py; the audience (recipients.py) and the
    # sender's engine and SQL hash (db/sender.py) came out of it with the same tests.
    "newsletter/delivery/queue.py": (
        ["tests/delivery/test_queue_unit.py"], "sqlite,postgresql"),
    "newsletter/delivery/recipients.py": (
        ["tests/delivery/test_queue_unit.py"], "sqlite,postgresql"),
    "newsletter/db/sender.py": (["tests/delivery/test_queue_unit.py"], "sqlite,postgresql"),
    # The PostgreSQL writer is half of the journal: this module needs both engines.
    "newsletter/delivery/journal.py": (
        ["tests/delivery/test_journal_unit.py", "tests/delivery/test_journal.py"],
        "sqlite,postgresql"),
}
COPY = ["newsletter", "tests", "issues", "templates", "subscribers"]


def mutmut_table(module: str, tests: list[str]) -> str:
    """The [tool.mutmut] settings for one module, appended to the project's pyproject.toml."""
    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["newsletter"]\n'
        f"only_mutate = {json.dumps([module])}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]\n'
        # A forked test run at nice 19 on a loaded shared machine waits minutes for a CPU (and
        # migrates its own SQLite template): mutmut's default, 15 times the tests' own duration
        # plus 1 s, then reports most mutants as timed out. No mutant of these modules loops.
        "timeout_multiplier = 30.0\n"
        "timeout_constant = 600.0\n"
    )


def prepare(module: str, tests: list[str]) -> Path:
    """A fresh scratch copy of the project for one module."""
    work = WORK / module.replace("/", "_").removesuffix(".py")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for name in COPY:
        shutil.copytree(ROOT / name, work / name,
                        ignore=shutil.ignore_patterns("__pycache__", "artifacts"))
    text = (ROOT / "pyproject.toml").read_text("utf-8")
    (work / "pyproject.toml").write_text(text + mutmut_table(module, tests), "utf-8")
    return work


def score(work: Path) -> dict[str, object]:
    """Killed, survived and the rest, from mutmut's own export."""
    subprocess.run([MUTMUT, "export-cicd-stats"], cwd=work, check=True, capture_output=True)
    stats = json.loads((work / "mutants" / "mutmut-cicd-stats.json").read_text("utf-8"))
    results = subprocess.run([MUTMUT, "results"], cwd=work, capture_output=True, text=True)
    stats["not_killed"] = [line.strip() for line in results.stdout.splitlines() if line.strip()]
    return stats


def run(module: str, children: int) -> dict[str, object]:
    tests, backends = MODULES[module]
    work = prepare(module, tests)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("NEWSLETTER_") and k != "CI"}
    # MUTATE_BACKENDS=sqlite narrows a long run; re-run the engine-specific mutants after.
    env["NEWSLETTER_TEST_BACKENDS"] = os.environ.get("MUTATE_BACKENDS", backends)
    with (work / "mutmut.log").open("w") as log:  # its progress bar is one long line
        subprocess.run(["nice", "-n", "10", MUTMUT, "run", "--max-children", str(children)],
                       cwd=work, env=env, check=True, stdout=log, stderr=subprocess.STDOUT)
    return score(work)


def main() -> None:
    modules = sys.argv[1:] or list(MODULES)
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        sys.exit(f"not a module mutation testing covers: {', '.join(unknown)}")
    children = int(os.environ.get("MUTATE_CHILDREN", "2"))
    scores_path = WORK / "scores.json"
    for module in modules:
        result = run(module, children)
        # Re-read: another run may have recorded other modules meanwhile.
        scores = json.loads(scores_path.read_text("utf-8")) if scores_path.exists() else {}
        scores[module] = result
        scores_path.write_text(json.dumps(scores, indent=2), "utf-8")
        print(summary(module, result), flush=True)


def summary(module: str, s: dict[str, object]) -> str:
    """One line per module: killed of all mutants, and what was not killed."""
    killed, total = int(s.get("killed", 0)), int(s.get("total", 0))  # type: ignore[call-overload]
    share = f"{100 * killed / total:.0f} %" if total else "-"
    return (f"{module}: {killed}/{total} killed ({share}), {s.get('survived', 0)} survived, "
            f"{s.get('no_tests', 0)} without tests, {s.get('timeout', 0)} timed out")


if __name__ == "__main__":
    main()
