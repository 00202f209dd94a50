"""Inbound bounces and complaints: parsing reports and tying them to deliveries."""
