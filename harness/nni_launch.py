"""nnictl, with a web server that may take its time: `python -m harness.nni_launch create --config ...`.

NNI 3.0's launcher gives its freshly started web server about 3 s (three tries a second apart) to answer
/check-status, then gives up with a ConnectionError. On a machine whose cores are busy the server often needs longer,
and the start fails although nothing is wrong. This runs nnictl itself with that one wait raised to
WEB_SERVER_WAIT seconds. Nothing else about nnictl changes, and a server that answers at once is not held up."""
from __future__ import annotations

import sys
import warnings

WEB_SERVER_WAIT = 90  # seconds: a cold start of NNI's node server under load 18 on 2 cores took under 40 s


def patch_launcher(wait: int = WEB_SERVER_WAIT) -> None:
    from nni.experiment import launcher

    original = launcher._check_rest_server

    def patient(port: int, retry: int = 3, url_prefix: str | None = None) -> None:
        original(port, retry=max(retry, wait), url_prefix=url_prefix)

    launcher._check_rest_server = patient


def main() -> int:
    # nnictl imports pkg_resources, which warns on every call; the user cannot act on it.
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    patch_launcher()
    from nni.tools.nnictl.nnictl import parse_args

    sys.argv[0] = "nnictl"
    return parse_args() or 0


if __name__ == "__main__":
    raise SystemExit(main())
