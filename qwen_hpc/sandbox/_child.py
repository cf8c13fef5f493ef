"""The first code the sandboxed interpreter runs (passed with `python -I -S -c`, so it needs no files).

It applies the rlimits to itself, optionally leaves the network namespace and drops to the slot's uid, then
runs the program as `__main__` and reports on the status pipe how the program ended: `ok` (ran to its last
line), `exit N` (SystemExit) or `exception Name`. The parent reads that pipe to tell a MemoryError from a
failed assert, and a program that ran to its end from one that called os._exit part-way. This file is
deliberately standalone: no qwen_hpc imports, stdlib only.
"""

import os
import resource
import sys
import time


def _apply_limits(rlimits):
    for name, (soft, hard) in rlimits.items():
        number = getattr(resource, name)
        _, current_hard = resource.getrlimit(number)
        if current_hard != resource.RLIM_INFINITY:
            hard = min(hard, current_hard)
            soft = min(soft, hard)
        resource.setrlimit(number, (soft, hard))


def _leave_network():
    import ctypes

    clone_newnet = 0x40000000
    if ctypes.CDLL(None, use_errno=True).unshare(clone_newnet) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")


def _drop_privileges(uid, gid):
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def _run(path, status_fd):
    import types

    module = types.ModuleType("__main__")
    module.__file__ = path
    module.__builtins__ = __builtins__
    sys.modules["__main__"] = module
    sys.argv = [path]
    with open(path, "rb") as handle:
        code = compile(handle.read(), path, "exec")
    out_of_memory = b"exception MemoryError\n"
    try:
        exec(code, module.__dict__)
    except MemoryError:
        os.write(status_fd, out_of_memory)
        raise
    except SystemExit as stop:
        value = stop.code
        rc = 0 if value is None else value if isinstance(value, int) else 1
        os.write(status_fd, b"exit %d\n" % rc)
        raise
    except BaseException as error:  # report, then print the traceback without this file's frame
        os.write(status_fd, ("exception " + type(error).__name__ + "\n").encode())
        import traceback

        traceback.print_exception(type(error), error, error.__traceback__.tb_next)
        sys.exit(1)
    os.write(status_fd, b"ok\n")


def _config(argv):
    """`key=value` arguments (json would cost an import of `re` in every run); rlimits as NAME:soft:hard."""
    config = {"rlimits": {}}
    for item in argv:
        key, _, value = item.partition("=")
        if key == "rlimit":
            name, soft, hard = value.split(":")
            config["rlimits"][name] = (int(soft), int(hard))
        elif key in ("uid", "gid", "status_fd", "sock_fd"):
            config[key] = int(value)
        elif key in ("site", "unshare_net", "forbid_root"):
            config[key] = value == "1"
        else:
            config[key] = value
    return config


def _prepare(config):
    """Limits, network, uid, directory: everything before the program's first line."""
    status_fd = config["status_fd"]
    _apply_limits(config["rlimits"])
    if config.get("unshare_net"):
        _leave_network()
    if "uid" in config:
        _drop_privileges(config["uid"], config["gid"])
    elif config.get("forbid_root") and os.geteuid() == 0:
        raise SystemExit("sandbox: refusing to run a program as root outside namespaces")
    os.set_inheritable(status_fd, False)
    os.chdir(config["workdir"])
    sys.path.insert(0, config["workdir"])
    if config.get("site"):
        import site

        site.main()


def _exit_code(stop):
    value = stop.code
    if value is None or isinstance(value, int):
        return value or 0
    print(value, file=sys.stderr)
    return 1


def _forked_run(config, fds):
    """In a child of the supervisor: take the run's fds as 0/1/2/3, run, and exit as an interpreter would."""
    stdin, stdout, stderr, status = fds
    for source, target in ((stdin, 0), (stdout, 1), (stderr, 2), (status, 3)):
        os.dup2(source, target)
    os.closerange(4, 1 << 16)  # the supervisor's socket included
    os.setsid()
    config["status_fd"] = 3
    code = 0
    try:
        _prepare(config)
        _run(config["main"], 3)
    except SystemExit as stop:
        code = _exit_code(stop)
    except BaseException as error:  # the child must always reach os._exit; print as the interpreter would
        code = 1
        try:
            import traceback

            traceback.print_exception(type(error), error, error.__traceback__)
        except BaseException:  # noqa: BLE001
            pass
    try:
        threading = sys.modules.get("threading")
        if threading is not None:
            threading._shutdown()
        import atexit

        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        code = code or 1
    os._exit(code)


def _sweep(uid):
    """Kill every process of `uid` in this pid namespace (what a run left behind) and wait until the
    namespace's init has reaped them all, so the uid owns nothing when it goes to the next run."""
    for _ in range(2000):
        left = False
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                if os.stat("/proc/" + name).st_uid != uid:
                    continue
                left = True
                with open("/proc/" + name + "/stat", "rb") as handle:
                    if handle.read().rpartition(b")")[2].split()[0] != b"Z":
                        os.kill(int(name), 9)
            except (OSError, IndexError):
                pass
        if not left:
            return
        time.sleep(0.001)


def serve(config):
    """Supervisor: one request per run on the socket (arguments + 4 fds), fork, wait, sweep, reply."""
    import socket

    sock = socket.socket(fileno=config["sock_fd"])
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(sock, 1 << 16, 4)
        except OSError:
            return
        if not message:
            return
        run_config = _config(message.decode().split("\0"))
        pid = os.fork()
        if pid == 0:
            _forked_run(run_config, fds)
        for fd in fds:
            os.close(fd)
        _, status, usage = os.wait4(pid, 0)
        _sweep(run_config["uid"])
        sock.sendall(b"%d %.3f\n" % (os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime))


def main():
    if sys.argv[1:2] == ["serve"]:
        serve(_config(sys.argv[2:]))
        return
    config = _config(sys.argv[1:])
    _prepare(config)
    _run(config["main"], config["status_fd"])


main()
