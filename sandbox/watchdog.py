"""The first process of a container job: it runs the job as its child and kills it at the time
limit, by itself. discover's own timeout (`DockerBackend.execute`) fires first; this one matters
when the process that started the container is gone (killed, or a Ray worker that died), which
would otherwise leave the container running, holding its device, for as long as the code inside
chose. As PID 1 of the container's PID namespace it cannot be killed from inside, and when it
exits the kernel ends every other process of the job.

    python -m discover.sandbox.watchdog SECONDS COMMAND...
"""

from __future__ import annotations

import subprocess
import sys


def main() -> None:
    limit, command = float(sys.argv[1]), sys.argv[2:]
    child = subprocess.Popen(command)
    try:
        code = child.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        print(f"watchdog: killed the job after {limit:g} s", file=sys.stderr)
        sys.exit(124)
    sys.exit(128 - code if code < 0 else code)  # killed by signal N: 128 + N, as a shell reports it


if __name__ == "__main__":
    main()
