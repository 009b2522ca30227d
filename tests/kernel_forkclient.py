"""The `python3` kernel spec's command under the test suite (see kernel_forkserver.py).

Asks the fork server for a kernel with this process's argv, folder, environment and standard
streams, then stands in for it: the kernel manager's signals (interrupt, terminate) are passed
on, killing this process kills the kernel, and this process exits with the kernel's exit code.
Without a server, or when the server declines, it becomes a fresh `ipykernel_launcher`.
"""
import json
import os
import select
import signal
import socket
import sys


def fresh() -> None:
    os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", *sys.argv[1:]])


def main() -> None:
    path = os.environ.get("WORKBENCH_TEST_KERNEL_SERVER")
    if not path:
        fresh()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
        request = {"args": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}
        socket.send_fds(conn, [json.dumps(request).encode() + b"\n"], [0, 1, 2])
        said = b""
        while not said.endswith(b"\n") and (chunk := conn.recv(64)):  # the kernel's pid, or "fresh"
            said += chunk
        answer, _, said = said.partition(b"\n")
    except OSError:
        answer = b""
    if not answer.isdigit():  # no server, or one that cannot fork this environment
        conn.close()
        fresh()
    pid = int(answer)

    def forward(sig, _frame):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, forward)
    parent = os.getppid()
    code = 1
    while True:
        ready, _, _ = select.select([conn], [], [], 0.5)  # signals interrupt it; PEP 475 retries
        if ready:
            chunk = conn.recv(64)
            said += chunk
            if said.startswith(b"exit ") and said.endswith(b"\n"):
                code = int(said.split()[1])
                break
            if not chunk:  # the server went away (and its kernels with it)
                break
        elif os.getppid() != parent:  # as ipykernel does: a kernel whose manager died exits
            forward(signal.SIGKILL, None)
            break
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
