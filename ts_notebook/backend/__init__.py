"""The embedded serving backend: a TorchServe-compatible server that runs in its own process.

``python -m ts_notebook.backend`` starts it. The HTTP side (this package minus ``worker`` and
``zygote``) never imports torch; workers are forked from a zygote that has imported torch but run
no op, and talk to the backend over a Unix socket.
"""
