"""The security tests drive the real web app and SMTP server: the web tests' fixtures."""

from tests.web.conftest import smtp, web, web_extra

__all__ = ["smtp", "web", "web_extra"]
