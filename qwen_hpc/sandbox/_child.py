"""The first code the sandboxed interpreter runs (passed with `python -I -S -c`, so it needs no files).

It applies the rlimits to itself, optionally leaves the network namespace and drops to the slot's uid, then
runs the program as `__main__` and reports on the status pipe how the program ended: `ok` (ran to its last
line), `exit N` (SystemExit) or `exception Name`. The parent reads that pipe to tell a MemoryError from a
failed assert, and a program that ran to its end from one that called os._exit part-way. This file is
deliberately standalone: no qwen_hpc imports, stdlib only.
"""

import json
import os
import resource
import sys


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


def main():
    config = json.loads(sys.argv[1])
    status_fd = config["status_fd"]
    _apply_limits(config["rlimits"])
    if config.get("unshare_net"):
        _leave_network()
    if config.get("uid") is not None:
        _drop_privileges(config["uid"], config["gid"])
    elif config.get("forbid_root") and os.geteuid() == 0:
        raise SystemExit("sandbox: refusing to run a program as root outside namespaces")
    os.set_inheritable(status_fd, False)
    os.chdir(config["workdir"])
    sys.path.insert(0, config["workdir"])
    if config.get("site"):
        import site

        site.main()
    _run(config["main"], status_fd)


main()
