"""The one exception type users see: its message names the file or config key and says what to do."""


class EpeflowError(Exception):
    """An error caused by input or configuration, reported by the CLI without a traceback."""


# Exit status of a run that stopped early on request and saved what a rerun continues from: EX_TEMPFAIL of
# sysexits.h ("temporary failure; the user is invited to retry"), distinct from errors (1) and user errors (2).
EXIT_STOPPED = 75


class RunStopped(Exception):
    """A long run stopped on a signal (SLURM's time-limit warning or pre-emption) after saving its state.

    Not a failure of the user's: the CLI prints the message and exits with `EXIT_STOPPED`; rerunning the
    same command continues where the run stopped.
    """
