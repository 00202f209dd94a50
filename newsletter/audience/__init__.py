"""Audience: lists, subscribers, opt-in, preferences, import/export, suppression."""
