"""Small add-ons loaded by the Rasa server runtime (Python 3.10).

Nothing here may import the `bot` package: the Rasa server and the action server are
separate runtimes with incompatible dependencies.
"""

import sys as _sys

if "rasa" in _sys.modules:  # inside the Rasa runtime: action results checked by a validator built once
    from concierge_rasa.action_results import install as _install_action_results

    _install_action_results()
