"""`python -m newsletter`: the same command as the `newsletter` script."""

from newsletter.cli.main import main

try:
    main()
finally:
    # Run with -m, Python ends the process by SIGINT at exit once a KeyboardInterrupt has
    # come out of an exec() or eval() of a string (dataclasses, namedtuple and SQLAlchemy
    # build functions that way), even where it was caught. A Ctrl-C that click turned into
    # "Aborted!" and status 1 then now and then ended by signal instead. Running a string
    # clears that mark; a KeyboardInterrupt that nothing caught still ends by SIGINT.
    exec("pass")
