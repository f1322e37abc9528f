"""Services: take a Session, check ownership, return plain dataclasses (``bot.services.types``)."""
