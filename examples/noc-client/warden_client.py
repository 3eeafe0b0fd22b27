#!/usr/bin/env python3
"""A NOC-side client for the Warden agent's gRPC API, in Python with grpcio.

Proves the API is usable outside Rust: it compiles the agent's .proto at start (grpcio-tools, no
generated code to keep in sync), then triggers a runbook, watches it live, or lists runs.

    pip install grpcio==1.76.0 grpcio-tools==1.76.0
    export WARDEN_TOKEN=wdn_...          # `warden token new --name noc --role operator`
    export WARDEN_ADDR=http://127.0.0.1:7355   # or 127.0.0.1:7355; https:// for a TLS agent
    python3 warden_client.py --addr 127.0.0.1:7355 trigger disk-pressure --param force=true
    python3 warden_client.py --addr 127.0.0.1:7355 watch <run-id>
    python3 warden_client.py --addr 127.0.0.1:7355 list --status succeeded

Exit status: 0 when the triggered/watched run succeeded, 1 when it did not, 2 on an API error.
"""

import argparse
import atexit
import importlib
import json
import os
import shutil
import sys
import tempfile

import grpc
from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PROTO_DIR = os.path.join(HERE, "..", "..", "crates", "warden-proto", "proto")


def load_stubs(proto_dir):
    """Compile warden/v1/warden.proto into a temp dir and import the generated modules."""
    out = tempfile.mkdtemp(prefix="warden-stubs-")
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    code = protoc.main([
        "protoc", f"-I{proto_dir}", f"-I{include}", f"--python_out={out}",
        f"--grpc_python_out={out}", "warden/v1/warden.proto",
    ])
    if code != 0:
        sys.exit(f"cannot compile {proto_dir}/warden/v1/warden.proto (protoc exit {code})")
    sys.path.insert(0, out)
    return (importlib.import_module("warden.v1.warden_pb2"),
            importlib.import_module("warden.v1.warden_pb2_grpc"))


def grpc_target(addr):
    """The target grpcio dials for an address given as `host:port` or, as `warden ctl` takes it,
    `http://host:port` / `https://host:port`; and whether the address asks for TLS."""
    scheme, sep, rest = addr.partition("://")
    if not sep:
        return addr, False
    if scheme not in ("http", "https"):
        sys.exit(f"--addr {addr!r}: the scheme must be http:// or https://")
    return rest.rstrip("/"), scheme == "https"


def connect(args):
    token = os.environ.get("WARDEN_TOKEN")
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            token = f.read().strip()
    if not token:
        sys.exit("no token: set WARDEN_TOKEN or pass --token-file")
    metadata = (("authorization", f"Bearer {token}"),)
    target, tls = grpc_target(args.addr)
    if args.ca_cert or tls:
        roots = None
        if args.ca_cert:
            with open(args.ca_cert, "rb") as f:
                roots = f.read()
        creds = grpc.ssl_channel_credentials(root_certificates=roots)
        return grpc.secure_channel(target, creds), metadata
    return grpc.insecure_channel(target), metadata


def watch(pb, stub, metadata, run_id):
    """Print every event of the run (from its start) and return its final status."""
    status = "unknown"
    for event in stub.Watch(pb.WatchRequest(run_id=run_id), metadata=metadata):
        kind = pb.EventKind.Name(event.kind)
        print(json.dumps({"seq": event.seq, "kind": kind, "step": event.step,
                          "status": event.status, "message": event.message}), flush=True)
        if kind == "RUN_FINISHED":
            status = event.status
    return status


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", default=os.environ.get("WARDEN_ADDR", "127.0.0.1:7355"),
                        help="host:port or http(s)://host:port (default: $WARDEN_ADDR)")
    parser.add_argument("--token-file")
    parser.add_argument("--ca-cert", help="CA certificate (PEM) for a TLS agent")
    parser.add_argument("--proto-dir", default=DEFAULT_PROTO_DIR)
    sub = parser.add_subparsers(dest="command", required=True)
    trig = sub.add_parser("trigger", help="trigger a runbook by name and watch it")
    trig.add_argument("name")
    trig.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    trig.add_argument("--dry-run", action="store_true")
    w = sub.add_parser("watch", help="follow a run's events")
    w.add_argument("run_id")
    lst = sub.add_parser("list", help="list runs, newest first")
    lst.add_argument("--status", default="")
    lst.add_argument("--runbook", default="")
    lst.add_argument("--limit", type=int, default=20)
    args = parser.parse_args()

    pb, rpc = load_stubs(args.proto_dir)
    channel, metadata = connect(args)
    stub = rpc.RunbooksStub(channel)
    try:
        if args.command == "trigger":
            params = {}
            for p in args.param:
                name, sep, value = p.partition("=")
                if not sep:
                    sys.exit(f"--param {p!r} is not NAME=VALUE")
                params[name] = value
            started = stub.Trigger(pb.TriggerRequest(name=args.name, params=params,
                                                     dry_run=args.dry_run), metadata=metadata)
            print(json.dumps({"run_id": started.run_id, "queued": started.queued}), flush=True)
            return 0 if watch(pb, stub, metadata, started.run_id) == "succeeded" else 1
        if args.command == "watch":
            return 0 if watch(pb, stub, metadata, args.run_id) == "succeeded" else 1
        reply = stub.ListRuns(pb.ListRunsRequest(limit=args.limit, status=args.status,
                                                 runbook=args.runbook), metadata=metadata)
        for run in reply.runs:
            print(json.dumps({"run_id": run.run_id, "runbook": run.runbook,
                              "status": run.status, "dry_run": run.dry_run}))
        return 0
    except grpc.RpcError as e:
        print(f"error: {e.code().name}: {e.details()}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
