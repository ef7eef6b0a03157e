"""Replacements the rules point to, and the bookkeeping that installs and removes them."""
