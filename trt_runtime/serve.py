"""``dcn-serve MODEL``: an exported model behind Triton Inference Server, through PyTriton.

PyTriton (``nvidia-pytriton``) starts a real ``tritonserver`` (HTTP, gRPC, metrics, dynamic
batcher, model instances) whose Python backend hands the requests to the callables bound here:
an ``.onnx`` from dcn-export runs in ONNX Runtime with our CPU ops
(:func:`trt_runtime.plugins.ort_session`), an engine in TensorRT with our plugins
(:class:`trt_runtime.infer.Engine`, GPU machine). Each model instance owns its own session /
engine; Triton's dynamic batcher groups requests over the model's batch axis
(:mod:`trt_runtime.triton_io`), and the callable stacks the requests of one batch that share
their other dimensions into one run and splits the outputs back, request by request.
Triton needs at least one dimension per item: a tensor with one value per item ([batch], or
rank 0 unbatched) is declared with dims [1] and sent as [batch, 1] (or [1]), as the native
repositories' ``dims: [ 1 ] reshape: { shape: [ ] }`` have it; the callable reshapes it.

The Python backend's stub is linked against ``libpython``; it must load the running
interpreter's own library (``sysconfig``'s LIBDIR), which :func:`python_env` puts first on
``LD_LIBRARY_PATH`` for the server process.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import sysconfig
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from dcn_base.cli import QUIET, VERBOSE, add_common_args, run_command, verbosity
from dcn_base.errors import DcnError
from dcn_base.libraries import ort_session, session_options
from dcn_base.model_io import check_not_pytorch

from .infer import Engine
from .plugin_loader import add_plugins_arg
from .serve_processes import ServeEnvironmentError, _children_table, _reap, _servers_spawned, check_host, check_port, \
    free_port
from .triton_io import ModelSpec, check_name, default_name, describe_engine, describe_engine_object, describe_onnx, \
    is_onnx

PROG = "dcn-serve"
# PyTriton keeps these server APIs behind a generated token; statistics stay open (read-only),
# so that clients and tests can see the batches Triton formed.
RESTRICTED_APIS = ("shared-memory", "model-repository", "trace", "logging")


# PyTriton's model instances after the first read their configuration from a Unix socket that the
# first one binds and then listens on; they connect as soon as the socket file exists, and one that
# comes between the bind and the listen gets "Connection refused" and the model fails to load
# (seen once in two full test runs here, --instances 2, machine busy): a timing race, so the server
# is launched once more before the error is reported.
HANDSHAKE_RACE = "get_config_from_handshake_server"
START_ATTEMPTS = 2


@dataclass
class ServeOptions:
    name: Optional[str] = None
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    instances: int = 1
    max_batch: int = 8
    queue_delay_us: int = 1000
    threads: int = 0  # ONNX Runtime intra-op threads per instance (0: ONNX Runtime's default)
    plugins: Optional[str] = None  # TensorRT plugin library (engines)
    ort_library: Optional[str] = None  # libdcn_ort (ONNX models)
    verbose: bool = False


# --------------------------------------------------------------------------- runners (one per instance)


class OrtRunner:
    """ONNX Runtime session with our ops: ``runner({name: array}) -> {name: array}``."""

    def __init__(self, path: str, threads: int = 0, library: Optional[str] = None):
        so = session_options()
        if threads > 0:
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
        self.session = ort_session(path, sess_options=so, library=library)
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.what = "ONNX Runtime + libdcn_ort"

    def __call__(self, feeds: dict) -> dict:
        return dict(zip(self.output_names, self.session.run(self.output_names, feeds)))


class EngineRunner:
    """A TensorRT engine with our plugins (GPU machine)."""

    def __init__(self, path: str, plugins: Optional[str] = None):
        self.engine = Engine(path, plugins=plugins)
        self.what = "TensorRT + libdcn_trt_plugins"

    def __call__(self, feeds: dict) -> dict:
        return self.engine(feeds)


def make_runners(model: str, spec_kind: str, opts: ServeOptions) -> list:
    if spec_kind == "onnx":
        return [OrtRunner(model, opts.threads, opts.ort_library) for _ in range(opts.instances)]
    return [EngineRunner(model, opts.plugins) for _ in range(opts.instances)]


def infer_callable(runner: Callable[[dict], dict], spec: ModelSpec, batching: bool, model_name: str):
    """The instance's PyTriton callable: a list of requests in, one response per request out.

    With batching, requests whose non-batch dimensions agree (dtypes are fixed by the config) are stacked along
    axis 0 and run once; the outputs are split back by each request's batch size, in order.
    """
    input_names = [t.name for t in spec.inputs]
    dtypes = {t.name: np.dtype(t.dtype) for t in spec.inputs}
    # one value per item: Triton's [n, 1] (unbatched [1]) is the model's [n] ([]), and back (see _tensors)
    squeeze = {t.name for t in spec.inputs if not _item_dims(t, batching)}
    unsqueeze = {t.name for t in spec.outputs if not _item_dims(t, batching)}

    def wire(out: dict) -> dict:
        return {k: v.reshape(v.shape + (1,)) if k in unsqueeze else v for k, v in out.items()}

    def run(feeds: dict) -> dict:
        try:
            return runner(feeds)
        except DcnError:
            raise
        except Exception as err:  # noqa: BLE001  (the runtime's own message, on one line)
            shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in feeds.items())
            raise DcnError(f"model {model_name!r} failed on {shapes}: {' '.join(str(err).split())}") from None

    def feed(r, n: str) -> np.ndarray:
        arr = np.asarray(r[n], dtype=dtypes[n])
        return arr.reshape(arr.shape[:-1]) if n in squeeze else arr

    def infer(requests):
        feeds_list = [{n: feed(r, n) for n in input_names} for r in requests]
        if not batching:
            return [wire(run(f)) for f in feeds_list]
        groups: dict[tuple, list[int]] = {}
        for i, f in enumerate(feeds_list):
            key = tuple((n, f[n].shape[1:]) for n in input_names)
            groups.setdefault(key, []).append(i)
        responses: list[Optional[dict]] = [None] * len(feeds_list)
        for members in groups.values():
            if len(members) == 1:
                responses[members[0]] = wire(run(feeds_list[members[0]]))
                continue
            stacked = {n: np.concatenate([feeds_list[i][n] for i in members], axis=0) for n in input_names}
            out = run(stacked)
            sizes = [int(feeds_list[i][input_names[0]].shape[0]) for i in members]
            bounds = np.cumsum([0] + sizes)
            for k, i in enumerate(members):
                responses[i] = wire({name: arr[bounds[k]:bounds[k + 1]] for name, arr in out.items()})
        return responses

    return infer


# --------------------------------------------------------------------------- PyTriton


def python_env() -> None:
    """Let the Python backend's stub load this interpreter's libpython (see the module docstring)."""
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and Path(libdir).is_dir():
        current = os.environ.get("LD_LIBRARY_PATH", "")
        if libdir not in current.split(os.pathsep):
            os.environ["LD_LIBRARY_PATH"] = libdir + (os.pathsep + current if current else "")


def import_pytriton():
    try:
        import pytriton.model_config as mc  # noqa: PLC0415  (optional extra [serve])
        import pytriton.triton as pt  # noqa: PLC0415  (optional extra [serve])
    except ImportError as err:
        raise ServeEnvironmentError(
            f"dcn-serve needs PyTriton ({' '.join(str(err).split())}); install it with `pip install nvidia-pytriton` "
            "(bash scripts/setup.sh does)"
        ) from None
    return pt, mc


def _item_dims(t, batching: bool) -> tuple[int, ...]:
    """A tensor's dims per request item: without its batch axis when Triton batches."""
    return t.dims[1:] if batching else t.dims


def _tensors(mc, tensors, batching: bool):
    """PyTriton's declarations; one value per item (no dims left) is declared as (1,): Triton refuses empty
    dims ("must specify 'dims'"), and infer_callable reshapes between the two."""
    return [mc.Tensor(name=t.name, dtype=np.dtype(t.dtype).type, shape=_item_dims(t, batching) or (1,))
            for t in tensors]


def wire_shape(t, batching: bool) -> Optional[str]:
    """How a tensor with one value per item travels, for the startup lines (None: as the model has it)."""
    if _item_dims(t, batching):
        return None
    return f"[{t.shape_text()[0]}, 1]" if batching else "[1]"


class Server:
    """One model behind a PyTriton-started tritonserver: ``start()``, ``endpoints``, ``stop()``."""

    def __init__(self, model: str, opts: ServeOptions):
        self.model = str(model)
        self.opts = opts
        check_not_pytorch(self.model)
        if opts.instances < 1:
            raise DcnError(f"--instances {opts.instances}: must be >= 1")
        if opts.max_batch < 0 or opts.queue_delay_us < 0 or opts.threads < 0:
            raise DcnError("--max-batch, --max-queue-delay-us and --threads must be >= 0")
        check_host(opts.host)
        self._check_ports()
        self.pt, self.mc = import_pytriton()
        if not Path(self.model).is_file():
            raise DcnError(f"model {self.model!r} does not exist or is not a file")
        self.name = check_name(opts.name or default_name(self.model))
        if is_onnx(self.model):
            self.spec = describe_onnx(self.model)
            self.runners = make_runners(self.model, "onnx", opts)
        else:
            self.runners = make_runners(self.model, "engine", opts)
            self.spec = describe_engine_object(self.runners[0].engine)
            try:  # the ONNX model it was built from (its .build.json) names the axes TensorRT leaves unnamed
                self.spec.onnx_batch_axis = describe_engine(self.model).batch_axis
            except DcnError:
                pass  # TensorRT's view alone: one input, or no batching
        self.max_batch = self.spec.batch_size(opts.max_batch)
        self.batching = self.max_batch > 0
        self.triton = None
        self._logdir = tempfile.mkdtemp(prefix="dcn-serve-")
        self.log_file = Path(self._logdir) / "tritonserver.log"
        self._children_before: set[int] = set()

    def _check_ports(self) -> None:
        """Each endpoint its own port: explicit ones in range, distinct and free now (tritonserver would
        print its usage or fail to bind, and PyTriton wait 120 s for it); 0 becomes a free port that no
        other endpoint has."""
        opts = self.opts
        flags = {what: f"--{what.replace('_', '-')}" for what in ("http_port", "grpc_port", "metrics_port")}
        taken: dict[int, str] = {}
        for what, flag in flags.items():
            port = getattr(opts, what)
            if port == 0:
                continue
            if not 0 < port < 65536:
                raise DcnError(f"{flag} {port}: expected 1..65535 (0: a free port)")
            if port in taken:
                raise DcnError(f"{flag} {port}: the same port as {taken[port]}; expected a different port for each "
                               "endpoint (0: a free one)")
            taken[port] = flag
            check_port(opts.host, port, flag)
        probe = opts.host if opts.host != "0.0.0.0" else "127.0.0.1"
        for what, flag in flags.items():
            if getattr(opts, what) == 0:
                port = free_port(probe)
                while port in taken:
                    port = free_port(probe)
                taken[port] = flag
                setattr(opts, what, port)

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return " | ".join(l.strip() for l in text[-lines:] if l.strip())

    @property
    def endpoints(self) -> dict[str, str]:
        host = "127.0.0.1" if self.opts.host == "0.0.0.0" else self.opts.host
        return {
            "http": f"http://{host}:{self.opts.http_port}",
            "grpc": f"grpc://{host}:{self.opts.grpc_port}",
            "metrics": f"http://{host}:{self.opts.metrics_port}/metrics",
        }

    def start(self, attempts: int = START_ATTEMPTS) -> None:
        """Launch tritonserver with the model; once more when PyTriton's instance handshake lost its
        race (HANDSHAKE_RACE), up to ``attempts`` launches in all."""
        for attempt in range(1, attempts + 1):
            try:
                self._start_once()
                return
            except ServeEnvironmentError as err:
                if attempt == attempts or HANDSHAKE_RACE not in str(err):
                    raise
                print(f"{PROG}: PyTriton's model instances missed their handshake (connection refused); "
                      f"starting Triton again", file=sys.stderr, flush=True)
                self._keep_log = False

    def _start_once(self) -> None:
        pt, mc = self.pt, self.mc
        python_env()
        config = pt.TritonConfig(
            http_address=self.opts.host, http_port=self.opts.http_port,
            grpc_address=self.opts.host, grpc_port=self.opts.grpc_port,
            metrics_address=self.opts.host, metrics_port=self.opts.metrics_port,
            exit_on_error=True, exit_timeout_secs=3, log_verbose=1 if self.opts.verbose else 0,
            # quiet unless -v: the server's log goes to a file (named in errors), not to our stdout
            log_file=None if self.opts.verbose else self.log_file,
        )
        security = pt.TritonSecurityConfig(restricted_endpoints=list(RESTRICTED_APIS))
        self._children_before = set(_children_table().get(os.getpid(), []))  # not ours to reap (see stop())
        self.triton = triton = pt.Triton(config=config, security_config=security)
        try:
            triton.__enter__()  # launches tritonserver
            batcher = mc.DynamicBatcher(max_queue_delay_microseconds=self.opts.queue_delay_us)
            model_config = (mc.ModelConfig(max_batch_size=self.max_batch, batcher=batcher) if self.batching
                            else mc.ModelConfig(batching=False))
            triton.bind(
                model_name=self.name,
                infer_func=[infer_callable(r, self.spec, self.batching, self.name) for r in self.runners],
                inputs=_tensors(mc, self.spec.inputs, self.batching),
                outputs=_tensors(mc, self.spec.outputs, self.batching),
                config=model_config,
                strict=True,
            )
            triton.run()
        except DcnError:
            self.stop()
            raise
        except Exception as err:  # noqa: BLE001  (PyTriton / tritonserver failures: one line, exit 2)
            self.stop(keep_log=True)
            tail = self.log_tail()
            raise ServeEnvironmentError(
                f"Triton Inference Server did not start: {' '.join(str(err).split()) or type(err).__name__}"
                + (f"; its log ({self.log_file}): {tail}" if tail else "")
            ) from None
        except BaseException:
            self.stop()
            raise

    def alive(self) -> bool:
        return self.triton is not None and self.triton.is_alive()

    def stop(self, keep_log: bool = False) -> None:
        triton, self.triton = self.triton, None
        if triton is not None:
            spawned = _servers_spawned(self._children_before)  # tritonserver and its backend stubs, nothing else
            triton.stop()
            _reap(spawned)
        self._keep_log = getattr(self, "_keep_log", False) or keep_log
        if not self._keep_log:
            shutil.rmtree(self._logdir, ignore_errors=True)

    def describe(self) -> list[str]:
        runtime = self.runners[0].what
        batching = (f"dynamic batching up to {self.max_batch} (max queue delay {self.opts.queue_delay_us} us)"
                    if self.batching else f"no batching ({self.spec.no_batching_reason(self.opts.max_batch)})")
        lines = [f"model {self.name!r} from {self.model}: {runtime}, {self.opts.instances} instance(s), {batching}"]
        for what, tensors in (("input ", self.spec.inputs), ("output", self.spec.outputs)):
            for t in tensors:
                sent = wire_shape(t, self.batching)
                lines.append(f"  {what} {t.describe()}" + (f" (sent as {sent}: Triton needs a dimension)"
                                                           if sent else ""))
        ep = self.endpoints
        lines += [f"  HTTP     {ep['http']}/v2/models/{self.name}/infer",
                  f"  gRPC     {ep['grpc']} (model {self.name!r})",
                  f"  metrics  {ep['metrics']}",
                  f"  stats    {ep['http']}/v2/models/{self.name}/stats"]
        return lines


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Serve an exported model through Triton Inference Server (PyTriton): HTTP and gRPC, dynamic "
                    "batching over the model's batch axis, N instances. MODEL.onnx runs in ONNX Runtime with the "
                    "dcn CPU ops, an engine in TensorRT with the dcn plugins (GPU machine). Ctrl-C stops it.",
    )
    p.add_argument("model", metavar="MODEL", help="MODEL.onnx from dcn-export, or a TensorRT engine from dcn-build")
    p.add_argument("--name", help="model name in URLs (default: the file's stem, or its folder for model.onnx)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0: all)")
    p.add_argument("--http-port", type=int, default=8000, help="HTTP port (default 8000; 0: a free port)")
    p.add_argument("--grpc-port", type=int, default=8001, help="gRPC port (default 8001; 0: a free port)")
    p.add_argument("--metrics-port", type=int, default=8002, help="Prometheus metrics port (default 8002; 0: free)")
    p.add_argument("--instances", type=int, default=1, help="model instances, each with its own session / engine")
    p.add_argument("--max-batch", type=int, default=8,
                   help="largest batch the dynamic batcher forms (default 8; 0: no batching)")
    p.add_argument("--max-queue-delay-us", type=int, default=1000,
                   help="how long a request may wait for others to batch with (default 1000 us)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads per instance (0: default)")
    add_plugins_arg(p, " for engines")
    p.add_argument("--ort-library", metavar="PATH", help="dcn ONNX Runtime op library (default: the one built here)")
    add_common_args(p, verbose_help="Triton's and PyTriton's logs")
    return p


def _quiet_logs(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR, format="%(name)s: %(message)s")
    if not verbose:
        for name in ("pytriton", "tritonclient"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def serve(model: str, opts: ServeOptions, say: Callable[[str], None] = print,
          stop_event: Optional[threading.Event] = None) -> int:
    """Start, print, serve until Ctrl-C / SIGTERM / ``stop_event`` (exit codes: 130, 0, 0), stop."""
    server = Server(model, opts)
    stop = stop_event or threading.Event()
    got: list[int] = []

    def on_signal(signum, _frame):
        got.append(signum)
        stop.set()

    old = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, on_signal)
    try:
        server.start()
        for line in server.describe():
            say(line)
        say(f"{PROG}: ready; Ctrl-C stops")
        sys.stdout.flush()
        while not stop.wait(0.5):
            if not server.alive():
                server.stop(keep_log=True)
                raise ServeEnvironmentError(f"Triton Inference Server stopped unexpectedly; its log "
                                            f"({server.log_file}): {server.log_tail()}")
    finally:
        server.stop()
        for sig, handler in old.items():
            signal.signal(sig, handler)
    say(f"{PROG}: stopped")
    return 130 if signal.SIGINT in got else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(None if argv is None else list(argv))
    level = verbosity(args)
    _quiet_logs(level >= VERBOSE)
    opts = ServeOptions(
        name=args.name, host=args.host, http_port=args.http_port, grpc_port=args.grpc_port,
        metrics_port=args.metrics_port, instances=args.instances, max_batch=args.max_batch,
        queue_delay_us=args.max_queue_delay_us, threads=args.threads, plugins=args.plugins,
        ort_library=args.ort_library, verbose=level >= VERBOSE,
    )
    say = (lambda s: None) if level <= QUIET else (lambda s: print(s, flush=True))
    return run_command(PROG, lambda: serve(args.model, opts, say=say), verbose=level >= VERBOSE)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
