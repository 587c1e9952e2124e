"""FreeSWITCH event-socket protocol, sans-IO (see :mod:`esl_dialer.esl.codec`)."""
from .codec import *  # noqa: F401,F403
from .codec import __all__  # noqa: F401
