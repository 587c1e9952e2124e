"""Service layer: the library API that CLI commands and views call.

Services own their transactions (``db.session()``), validate input and raise
:mod:`controller.errors` domain errors; they never print or read HTTP requests.
"""
