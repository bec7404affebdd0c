"""Joining Ray: a local session on loopback, or an existing cluster, checked before any run.

:func:`connect` is what :class:`~rebench_gym.vector.ray_env.RayVectorEnv` and ``rebench run
--ray`` use to join Ray:

* no address (``rebench run --ray local``): a new Ray session on this machine whose node address
  is ``127.0.0.1``, so none of Ray's traffic leaves loopback;
* ``HOST:PORT`` or ``auto``: the cluster whose head runs there (``ray start --head``). When the
  head is on loopback this process joins as node ``127.0.0.1`` too; otherwise Ray picks the
  address of this machine that routes to the head, or ``node_ip_address`` says which;
* ``ray://HOST:PORT``: Ray Client (needs ``ray[client]``).

Ray (2.x on Linux) rewrites ``127.0.0.1`` given as a node or cluster address into the machine's
interface address (it expects multi-node use), so a head started on loopback could not be joined
and a local session would register the interface address. In loopback mode :func:`connect`
switches on Ray's single-machine mode (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, which keeps
``127.0.0.1`` as it is) for this process and the Ray processes it starts.

Ray enables token authentication on a head started on a machine that has a token
(``~/.ray/auth_token``, written by any earlier local ``ray.init()``), but a driver given an
explicit address never sends one; :func:`connect` applies Ray's rule for ``"auto"`` to every
address: with ``RAY_AUTH_MODE`` unset and a token on this machine, it joins with the token.

A cluster that cannot be reached, or whose nodes cannot import this package, is a
:class:`RayClusterError` (a usage error: ``rebench run`` exits 2) whose message says what to
check; :func:`connect` raises it before anything runs, and leaves this process disconnected.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import sys
from typing import Any

from rebench_gym.errors import UsageError

LOOPBACK = "127.0.0.1"
# Ray's switch for its single-machine mode: loopback addresses are kept, not rewritten.
SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
REACH_TIMEOUT_S = 5.0
NODE_CHECK_TIMEOUT_S = 120.0
README_HINT = "See 'Ray clusters' in the README."
_UNSET = object()
_saved_mode: dict[str, Any] = {}


class RayClusterError(UsageError):
    """The Ray cluster cannot be reached or cannot run rebench_gym's envs (the message says
    what to check)."""


def ray_module() -> Any:
    """The ``ray`` package.

    Raises:
        UsageError: Ray is not installed.
    """
    try:
        import ray
    except ImportError as e:  # pragma: no cover - ray is installed with the [ray] extra
        raise UsageError("Ray is not installed: pip install 'rebench-gym[ray]'") from e
    return ray


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an IP address) is this machine's loopback interface."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_address(address: str) -> tuple[str, int]:
    """``(host, port)`` of ``HOST:PORT``, ``[IPv6]:PORT`` or ``ray://HOST:PORT``.

    Raises:
        RayClusterError: the address has no port or a bad one.
    """
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RayClusterError(
            f"{address!r} is not a Ray cluster address: give the head node's HOST:PORT (the "
            "--port of `ray start --head`, 6379 unless you chose another), 'auto' for the "
            f"cluster `ray start` runs on this machine, or 'local'. {README_HINT}"
        )
    return host.strip("[]"), int(port)


def connect(
    address: str | None = None,
    *,
    node_ip_address: str | None = None,
    check: bool = True,
    sandbox: str | None = None,
    **init_kwargs: Any,
) -> bool:
    """Join Ray in this process (see the module docstring), then check the cluster's nodes.

    Args:
        address: ``None`` or ``"local"`` for a new session on this machine; ``"auto"``, a head
            node's ``HOST:PORT`` or ``ray://HOST:PORT`` for an existing cluster.
        node_ip_address: the address this process registers as its Ray node. Default:
            ``127.0.0.1`` for a local session or a head on loopback; otherwise Ray's choice
            (the address that routes to the head). Give the head's address on a multi-node
            cluster whose head has several interfaces.
        check: run :func:`check_nodes` after joining.
        sandbox: the sandbox the envs will use (checked on every node).
        **init_kwargs: more ``ray.init`` arguments (``num_cpus``, ``runtime_env``, ...).

    Returns:
        ``True`` if this call joined Ray (the caller may ``ray.shutdown()`` when done, which
        disconnects from an existing cluster and never stops it); ``False`` if this process was
        already connected (that session is used).

    Raises:
        RayClusterError: the cluster cannot be reached, Ray refused the connection, or a node
            cannot run rebench_gym; this process is then left disconnected.
        UsageError: this process is connected to another cluster than ``address``.
    """
    ray = ray_module()
    if ray.is_initialized():
        _check_same_cluster(ray, address)
        return False
    target = None if address in (None, "local") else address
    shown = "a new local Ray session" if target is None else f"the Ray cluster at {target}"
    kwargs = dict(init_kwargs)
    if target is not None and target.startswith("ray://"):
        _check_reachable(target, *split_address(target))
    else:
        if target == "auto":
            target = _auto_address(ray)
            shown = f"the Ray cluster at {target} (from 'auto')"
        head = None if target is None else split_address(target)
        node_ip = node_ip_address
        if node_ip is None and (head is None or is_loopback(head[0])):
            node_ip = LOOPBACK
        _single_machine_mode(node_ip is not None and is_loopback(node_ip))
        if head is not None:
            _check_reachable(target or "", *head)
        if node_ip is not None:
            kwargs["_node_ip_address"] = node_ip
        if target is None:
            kwargs.setdefault("include_dashboard", False)
    if target is not None:
        _use_local_token()
    try:
        ray.init(address=target, **kwargs)
    except Exception as e:
        with contextlib.suppress(Exception):
            ray.shutdown()
        raise RayClusterError(
            f"could not join {shown}: {_one_line(e)}. Check that the head node is running "
            "(`ray status` on it), that the address is its HOST:PORT, and that this machine "
            "registers an address the cluster's nodes can reach (on one machine: start the head "
            f"with `{SINGLE_MACHINE_ENV}=0 ray start --head --node-ip-address 127.0.0.1 --port "
            "PORT` and pass 127.0.0.1:PORT; across machines: pass this machine's cluster "
            "address as the node address, rebench run --ray-node-ip), and, if the cluster uses "
            "token authentication, that this machine has its token (~/.ray/auth_token or "
            f"RAY_AUTH_TOKEN). {README_HINT}"
        ) from None
    if check:
        try:
            check_nodes(sandbox=sandbox)
        except BaseException:
            ray.shutdown()
            raise
    return True


def check_nodes(
    *, sandbox: str | None = None, timeout_s: float = NODE_CHECK_TIMEOUT_S
) -> list[dict[str, Any]]:
    """Check that every live node of the connected cluster can run rebench_gym's envs.

    One small task per node (zero CPUs, pinned to the node) imports the package there and
    reports its version, its Python and the sandbox tools it finds.

    Args:
        sandbox: the sandbox the envs will use: ``None`` or ``"bwrap"`` need bubblewrap,
            ``"docker"`` needs docker on every node.
        timeout_s: how long the nodes may take to answer.

    Returns:
        One report per node: ``node``, ``ip``, ``python``, ``version``, ``bwrap``, ``docker``.

    Raises:
        RayClusterError: a node cannot import rebench_gym, has another version of it, lacks
            the sandbox, or did not answer in time.
    """
    import rebench_gym

    ray = ray_module()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    def probe() -> dict[str, Any]:  # defined here so that Ray ships it by value
        import shutil as _shutil
        import sys as _sys

        report: dict[str, Any] = {
            "python": _sys.executable,
            "bwrap": bool(_shutil.which("bwrap")),
            "docker": bool(_shutil.which("docker")),
        }
        try:
            import rebench_gym as _package
            import rebench_gym.vector.worker
        except Exception as e:
            report["error"] = f"{type(e).__name__}: {e}"
        else:
            report["version"] = _package.__version__
        return report

    remote = ray.remote(num_cpus=0, max_retries=0)(probe)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if not nodes:
        raise RayClusterError(
            "the Ray cluster has no live node: start its head with `ray start --head`. "
            f"{README_HINT}"
        )
    refs = {
        n["NodeID"]: remote.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        ).remote()
        for n in nodes
    }
    ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout_s)
    done = {id(r) for r in ready}
    problems: list[str] = []
    reports: list[dict[str, Any]] = []
    for n in nodes:
        name = f"node {n.get('NodeManagerAddress', '?')} (id {n['NodeID'][:8]})"
        ref = refs[n["NodeID"]]
        if id(ref) not in done:
            problems.append(f"{name} did not run a check task within {timeout_s:g} s")
            continue
        try:
            report = dict(ray.get(ref), node=n["NodeID"], ip=n.get("NodeManagerAddress"))
        except Exception as e:
            problems.append(f"{name} failed its check: {_one_line(e)}")
            continue
        reports.append(report)
        where = f"{name}, Python {report['python']}"
        if "error" in report:
            problems.append(f"{where} cannot import rebench_gym ({report['error']})")
        elif report["version"] != rebench_gym.__version__:
            problems.append(f"{where} has rebench_gym {report['version']}")
        elif sandbox in (None, "bwrap") and not report["bwrap"]:
            problems.append(f"{where} lacks bubblewrap (bwrap) for the sandbox")
        elif sandbox == "docker" and not report["docker"]:
            problems.append(f"{where} lacks docker for the sandbox")
    for ref in refs.values():
        if id(ref) not in done:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
    if problems:
        raise RayClusterError(
            f"the Ray cluster cannot run rebench_gym's envs: {'; '.join(problems)}. Every node "
            f"needs rebench_gym {rebench_gym.__version__} with the [ray] extra (pip install "
            "'rebench-gym[ray]') in the Python environment that runs `ray start` on it, and the "
            "sandbox the run uses (bubblewrap for bwrap, the default; docker for docker); "
            f"install what is missing, then restart Ray on that node. {README_HINT}"
        )
    return reports


def _check_same_cluster(ray: Any, address: str | None) -> None:
    """Refuse an explicit ``HOST:PORT`` other than the cluster this process is connected to."""
    if address in (None, "local", "auto") or address.startswith("ray://"):
        return
    current = None
    with contextlib.suppress(Exception):  # e.g. a Ray Client session has no GCS address
        current = ray.get_runtime_context().gcs_address
    if current and not _same_endpoint(str(current), address):
        raise UsageError(
            f"this process is connected to the Ray cluster at {current}, not {address}: "
            "call ray.shutdown() first, or pass no address to use the running session"
        )


def _same_endpoint(a: str, b: str) -> bool:
    (host_a, port_a), (host_b, port_b) = split_address(a), split_address(b)
    if port_a != port_b:
        return False
    if host_a == host_b or (is_loopback(host_a) and is_loopback(host_b)):
        return True
    try:
        return socket.gethostbyname(host_a) == socket.gethostbyname(host_b)
    except OSError:
        return False


def _auto_address(ray: Any) -> str:
    """The cluster ``address="auto"`` means: ``RAY_ADDRESS``, else the one ``ray start`` runs on
    this machine."""
    found = os.environ.get("RAY_ADDRESS")
    if not found:
        with contextlib.suppress(Exception):
            from ray._private.services import find_bootstrap_address

            found = find_bootstrap_address(None)
    if not found:
        raise RayClusterError(
            "--ray auto found no Ray cluster on this machine (RAY_ADDRESS is unset and "
            "`ray start` has not recorded one): start the head with `ray start --head` or pass "
            f"its HOST:PORT. {README_HINT}"
        )
    return str(found)


def _check_reachable(address: str, host: str, port: int) -> None:
    """Fail fast (instead of Ray's long retries) when nothing listens at the head's port."""
    try:
        with socket.create_connection((host, port), timeout=REACH_TIMEOUT_S):
            return
    except OSError as e:
        reason = e.strerror or type(e).__name__
    raise RayClusterError(
        f"cannot reach the Ray cluster at {address} ({reason}). Check that its head node is "
        "running (`ray status` on it), that the address is the head's HOST:PORT (the --port "
        "of `ray start --head`, default 6379), and that this machine can reach that host and "
        "port; on one machine start the head with "
        f"`{SINGLE_MACHINE_ENV}=0 ray start --head --node-ip-address 127.0.0.1 --port PORT` "
        f"and pass 127.0.0.1:PORT. {README_HINT}"
    )


def _use_local_token() -> None:
    """Join with token authentication when ``RAY_AUTH_MODE`` is unset and this machine has a
    Ray token (Ray's own rule for ``address="auto"``); harmless for a cluster without auth."""
    try:
        from ray._private.authentication import authentication_token_setup as setup
    except ImportError:  # a Ray without token authentication
        return
    log = logging.getLogger(setup.__name__)
    level = log.level
    log.setLevel(logging.ERROR)  # Ray's warning would say the *cluster* enabled it
    try:
        setup.maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    finally:
        log.setLevel(level)


def _single_machine_mode(on: bool) -> None:
    """Switch Ray's single-machine mode on (loopback addresses stay loopback) or back to what
    it was, in this process and the processes it starts."""
    constants = sys.modules.get("ray._private.ray_constants")
    if on:
        if not _saved_mode:
            _saved_mode["env"] = os.environ.get(SINGLE_MACHINE_ENV, _UNSET)
            _saved_mode["constant"] = getattr(constants, "ENABLE_RAY_CLUSTER", _UNSET)
        os.environ[SINGLE_MACHINE_ENV] = "0"
        if constants is not None:
            setattr(constants, "ENABLE_RAY_CLUSTER", False)  # noqa: B010
        return
    if not _saved_mode:
        return
    env, constant = _saved_mode.pop("env"), _saved_mode.pop("constant")
    if env is _UNSET:
        os.environ.pop(SINGLE_MACHINE_ENV, None)
    else:
        os.environ[SINGLE_MACHINE_ENV] = env
    if constants is not None and constant is not _UNSET:
        setattr(constants, "ENABLE_RAY_CLUSTER", constant)  # noqa: B010


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 400 else text[:400] + " ..."
