"""The one exception type for problems the user can fix.

The core raises `BmtptError` with a one-line message naming the problem and the fix; the command
layer turns it into that line on stderr and exit code 2, without a traceback.
"""


class BmtptError(Exception):
    """A problem with the user's input (a flag, a file, a preset), not a bug in bmtpt."""
