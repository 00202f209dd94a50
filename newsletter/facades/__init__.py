"""The facades `Services` hands out: one way in for the front ends, `services` first.

Each facade holds the services object and delegates to the module that owns the concept; no
domain logic lives here. The owners are imported when a method is called, so building a facade
costs nothing.
"""

from newsletter.facades.audience import Audience, Compose, Lists, Statements
from newsletter.facades.base import Facade
from newsletter.facades.operations import Archive, Bounces, Outbox, Sending

__all__ = ["Archive", "Audience", "Bounces", "Compose", "Facade", "Lists", "Outbox", "Sending",
           "Statements"]
