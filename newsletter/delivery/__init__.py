"""Delivery: queue, message assembly, SMTP, runner."""
