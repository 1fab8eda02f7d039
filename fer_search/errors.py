"""The one exception type that reaches users as a plain message instead of a traceback."""


class UserError(Exception):
    """Bad input or an impossible request. The CLI prints `error: <message>` and exits with code 2.

    The message must name the file, row or option at fault and say what is wrong.
    """
