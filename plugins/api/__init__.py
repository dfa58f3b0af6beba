"""The REST API and ``tradepipe serve``.

Routes, request bodies, problem details, reports and the shared service state.
"""
