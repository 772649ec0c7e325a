"""The `lode` command of the wheel: the whole lode command line, run in-process by the
extension module (the same code as `cargo install`'s binary)."""
import signal
import sys


def main() -> None:
    # Python handles Ctrl-C itself and would hold it until the command returns; the command
    # line expects a native program's default (`lode serve` installs its own handler).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    from lode._native import cli_main

    sys.exit(cli_main(["lode", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
