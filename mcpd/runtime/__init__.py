"""The trio runtime: in-flight requests, legacy sessions and method dispatch.

Everything here runs under an owner: a request's work runs in its own cancel scope (a
``Flight``), a legacy session's work runs in that session's nursery, and the sessions run in
the daemon's nursery.
"""
