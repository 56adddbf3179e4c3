"""Reliability and safety suite (issue 7): bad input, faults, safety. The bad-input corpus is
generated from real public records into temporary folders by `corpus.py`; nothing is committed."""
