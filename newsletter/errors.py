"""The project's exceptions. The CLI catches NewsletterError in one place and prints one line."""


class NewsletterError(Exception):
    """Base for every error caused by input, configuration or the outside world."""


class NotFoundError(NewsletterError):
    """A list, subscriber or issue that does not exist."""


class ValidationError(NewsletterError):
    """A value given by the user cannot be used."""
