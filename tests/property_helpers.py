"""What every tests/test_properties_*.py shares: hypothesis settings and the documented-error check."""
from hypothesis import settings

FAST = settings(max_examples=50, deadline=None)


def named(err: Exception, *names: str) -> bool:
    """A documented error kind whose message names one of the arguments."""
    return isinstance(err, (TypeError, ValueError, KeyError)) and any(n in str(err) for n in names)
