"""Service exceptions; ``message`` is always safe to show to the customer."""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: ``code`` is machine-readable, ``message`` is customer-safe."""

    code: str = "error"
    message: str = "Sorry, something went wrong."

    def __init__(self, code: str | None = None, message: str | None = None) -> None:
        if code is not None:
            self.code = code
        if message is not None:
            self.message = message
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class NotFound(ServiceError):
    """The thing does not exist *or* belongs to someone else (deliberately indistinguishable)."""

    code = "not_found"
    message = "I couldn't find that in your account."


class NotAllowed(ServiceError):
    """The thing exists and is yours, but policy forbids the request (see ``code``)."""

    code = "not_allowed"
    message = "Sorry, that isn't possible."


class InvalidInput(ServiceError):
    """The customer's input is malformed (empty, too long, wrong format)."""

    code = "invalid_input"
    message = "Sorry, I couldn't understand that."


ORDER_NOT_FOUND = "I couldn't find an order with that number in your account."
REFUND_NOT_FOUND = "I couldn't find a refund or return with that number in your account."


def order_not_found() -> NotFound:
    """The single NotFound used for unknown *and* foreign orders (no existence leak)."""
    return NotFound("order_not_found", ORDER_NOT_FOUND)


def refund_not_found() -> NotFound:
    return NotFound("refund_not_found", REFUND_NOT_FOUND)
