"""The channels package as Rasa loads it: every class credentials.yml names, by Rasa's own loader."""

from __future__ import annotations

from pathlib import Path

import pytest
from rasa.core.run import create_http_input_channels
from rasa.shared.utils.common import class_from_module_path

from concierge_rasa import channels
from concierge_rasa.channels.rest import ConciergeRestInput

CREDENTIALS = Path(__file__).resolve().parents[2] / "credentials.yml"


def test_rasa_builds_every_channel_the_shipped_credentials_name() -> None:
    built = create_http_input_channels(None, str(CREDENTIALS))
    assert sorted(c.name() for c in built) == sorted(channels.CHANNEL_CLASSES)
    for channel in built:
        assert type(channel) is channels.get_channel_class(channel.name())
        assert type(channel).__module__.startswith("concierge_rasa.channels.")


def test_names_from_before_the_package_split_still_load() -> None:
    """A credentials file that names ``concierge_rasa.channels.ConciergeRestInput`` keeps working."""
    assert class_from_module_path("concierge_rasa.channels.ConciergeRestInput") is ConciergeRestInput
    assert channels.get_channel_class("nope") is None
    with pytest.raises(AttributeError):
        channels.NotAChannel  # noqa: B018 - the attribute lookup is the test
