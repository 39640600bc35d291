"""Programs the tests start as processes of their own (``python tests/support/scripts/X.py``)."""
