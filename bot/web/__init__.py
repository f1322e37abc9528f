"""The project's web application (FastAPI): the demo shop with the chat widget.

``create_app()`` in :mod:`bot.web.app` wires one router per feature; ``python -m bot.web`` serves it.
"""
