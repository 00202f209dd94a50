"""newsletter: a self-hosted multilingual newsletter and mailing-list manager."""

__version__ = "0.1.0"
