"""Small add-ons loaded by the Rasa server runtime (Python 3.10).

Nothing here may import the `bot` package: the Rasa server and the action server are
separate runtimes with incompatible dependencies.
"""
