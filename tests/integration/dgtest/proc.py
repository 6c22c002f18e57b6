"""Running external commands with useful failure messages."""
import os
import signal
import subprocess


class CommandFailed(AssertionError):
    pass


def run(cmd, env=None, timeout=300, check=True, input=None, cwd=None, stdin=None):
    """Run cmd (a list), capture text output; raise CommandFailed with both streams on error."""
    kwargs = dict(env=env, cwd=cwd, timeout=timeout, capture_output=True)
    if stdin is not None:
        kwargs["stdin"] = stdin
    else:
        kwargs["input"] = input if input is not None else b""
    proc = subprocess.run([str(c) for c in cmd], **kwargs)
    proc.stdout = proc.stdout.decode("utf-8", "replace")
    proc.stderr = proc.stderr.decode("utf-8", "replace")
    if check and proc.returncode != 0:
        raise CommandFailed(
            f"command failed with exit {proc.returncode}: {' '.join(map(str, cmd))}\n"
            f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
        )
    return proc


def stop_process(popen, timeout=10.0):
    """SIGTERM, then SIGKILL after timeout. Only ever touches the given process."""
    if popen.poll() is not None:
        return popen.returncode
    try:
        popen.send_signal(signal.SIGTERM)
        return popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        popen.kill()
        return popen.wait(timeout=timeout)


def read_tail(path, limit=20000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
