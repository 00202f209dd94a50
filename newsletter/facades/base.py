"""The base of every facade: it holds the services object."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from newsletter.services import Services


class Facade:
    def __init__(self, services: Services) -> None:
        self.services = services
