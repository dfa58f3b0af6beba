"""``tradepipe execute``: one decision document through the whole pipeline."""
