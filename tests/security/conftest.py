"""The hostile-input tests use the fixtures of the parts they attack."""

from tests.web.conftest import smtp, web, web_extra  # noqa: F401
