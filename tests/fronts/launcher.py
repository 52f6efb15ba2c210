#!/usr/bin/env python3
"""A systemd-style socket owner for the restart test (tests/fronts_matrix.rs).

Binds SOCKET and keeps it, runs COMMAND with the listening socket on fd 3 and
LISTEN_FDS=1 / LISTEN_PID=<its pid> (as systemd's socket activation does), and
on SIGHUP restarts it as `systemctl restart` does: SIGTERM, wait for the exit,
start a new one. Connections arriving meanwhile wait in the socket's backlog.
Usage: launcher.py SOCKET COMMAND...
"""
import os
import signal
import socket
import subprocess
import sys
import time

path, cmd = sys.argv[1], sys.argv[2:]
try:
    os.unlink(path)
except FileNotFoundError:
    pass
sock = socket.socket(socket.AF_UNIX)
sock.bind(path)
os.chmod(path, 0o666)
sock.listen(4096)
os.dup2(sock.fileno(), 3)
os.set_inheritable(3, True)


def start():
    # sh's $$ is the pid the command keeps after exec: LISTEN_PID names it.
    script = 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"'
    return subprocess.Popen(["sh", "-c", script, "sh", *cmd], pass_fds=(3,))


child = start()
pending = 0


def on_hup(*_):
    global pending
    pending += 1


def on_term(*_):
    child.terminate()
    child.wait()
    sys.exit(0)


signal.signal(signal.SIGHUP, on_hup)
signal.signal(signal.SIGTERM, on_term)
while True:
    time.sleep(0.01)
    if pending:
        pending -= 1
        child.terminate()
        code = child.wait()
        child = start()
        print(f"restarted: old exited {code}, new pid {child.pid}", flush=True)
