"""Small add-ons loaded by the Rasa server runtime (Python 3.10).

Nothing here may import the `bot` package: the Rasa server and the action server are
separate runtimes with incompatible dependencies.
"""

import sys as _sys

if "rasa" in _sys.modules:  # inside the Rasa runtime (issue 24's savings)
    from concierge_rasa.action_results import install as _install_action_results
    from concierge_rasa.states import install as _install_states

    _install_action_results()  # action results checked by a validator built once
    _install_states()  # a tracker's past states built once per prediction, not once per policy
