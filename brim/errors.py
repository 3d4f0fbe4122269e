"""The small exception hierarchy of brimd.

Every error brimd reports to an operator at start-up derives from
:class:`BrimError`; ``brimd``'s ``main()`` catches the base class, prints
``str(err)`` as one line on stderr and exits 1 (``-x`` shows the traceback).
Invariant: ``str()`` of every one of these is a single line that names where
the problem is (conf section and option, file, address).
"""


class BrimError(Exception):
    """Base of every error brimd reports as one line and exit status 1."""


class ConfError(BrimError):
    """A conf value that is missing, unknown or cannot be converted.

    Args:
        section: The conf section (``'wsgi'``), or ``''`` for file-level errors.
        option: The option name, or ``''``.
        value: The offending raw value (shown with ``repr``), or ``None``.
        reason: What is wrong, e.g. ``'cannot be converted to int'``.
    """

    def __init__(self, section: str, option: str, value: object, reason: str) -> None:
        self.section = section
        self.option = option
        self.value = value
        self.reason = reason
        where = '[%s]' % section if section else 'conf'
        if option:
            where += ' %s' % option
        if value is not None:
            where += ' = %r' % (value,)
        super().__init__('%s: %s' % (where, reason))


class AppLoadError(BrimError):
    """A ``call =`` class that cannot be imported, checked or configured."""


class StartupError(BrimError):
    """Any other start-up failure: a port in use, an unwritable pid file, ..."""
