"""The one user-facing error: a reason the user acts on, printed once.

Every module that can refuse what a user asked for (a manifest, a data dir, a download, a
ladder, a results folder, a site, an environment's pins) raises a subclass of UserError
whose message is one line naming the file, key or thing at fault and, where there is one,
the next command to run. Library code never prints it: `python -m imgload` (cli.main)
catches UserError in one place and prints `imgload: error: <message>` with exit status 2,
no traceback. The other entry points keep their own one-line form: envcheck (asv's
install_command) and setup_cache (suite.prepare) each print the message themselves.

Not user errors, and so not subclasses: the signals inside a benchmark (decoders.Unavailable,
decoders.DecodeError, pagecache.PageCacheError), a worker's failure, and a refusal that
means a bug (say, files.replacing asked to delete a name that is not its scratch).

Standard library only: the asv environments import it (datasets, envcheck).
"""

from __future__ import annotations

EXIT_STATUS = 2  # what `python -m imgload` exits with after printing a UserError


class UserError(Exception):
    """A one-line reason, for the user, why what they asked for cannot be done.

    str(e) is the whole message, without the `imgload: error: ` prefix cli.main adds."""
