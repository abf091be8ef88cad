"""Shared by the CAST tests: a policy that drafts on some steps only."""
from __future__ import annotations


class Intermittent:
    """A test policy: a fixed tree on some steps and no draft on the others (`pattern` repeats: 1 drafts, 0 not),
    so the draft must catch up on every token it missed."""

    def __init__(self, tree, pattern=(1, 0, 0, 1, 0)):
        self.tree, self.pattern, self.top_k = tree, tuple(pattern), tree.top_k
        self.i = 0

    def reset(self):
        """Start the pattern again."""
        self.i = 0

    def should_draft(self, batch, context):
        """Follow the pattern."""
        self.i += 1
        return bool(self.pattern[(self.i - 1) % len(self.pattern)])

    def width(self, info):
        """As the fixed tree."""
        return self.tree.width(info)

    def go_deeper(self, level, kept, info):
        """As the fixed tree."""
        return self.tree.go_deeper(level, kept, info)

    def n_verify(self, scores, context):
        """As the fixed tree."""
        return self.tree.n_verify(scores, context)

    def __repr__(self):
        return f"Intermittent({self.tree!r}, {self.pattern})"
