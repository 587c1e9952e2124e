"""ESL side of esl-dialer: everything that talks to FreeSWITCH.

This package never imports ``controller``: dialing workers run on agents' PCs
(SPEC D11) and reach the controller over HTTP only.  What both sides share
(states, results, message shapes) lives in :mod:`esl_dialer.messages`.
"""

__version__ = "0.1.0"
