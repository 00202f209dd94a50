"""`newsletter doctor`: checks of the sending set-up (DNS, relay, web), each a named rule.

Every rule runs and returns a frozen CheckResult (ok, warn or fail, a detail and a one-line
fix); one verdict follows. Network steps have short timeouts and a failure is a result.
"""

from newsletter.doctor.checks import CheckResult
from newsletter.doctor.runner import RULES, run_doctor

__all__ = ["RULES", "CheckResult", "run_doctor"]
