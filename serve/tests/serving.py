"""A `resnet-serve` process for the Python tests: the digits classifier on 127.0.0.1, HTTP and
gRPC on free ports, stopped (SIGTERM, exit status 0) by `stop()`."""

import os
import pathlib
import re
import subprocess
import threading
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
DIGITS = ROOT / "assets" / "digits"
WEIGHTS = DIGITS / "digits.safetensors"
LABELS = DIGITS / "labels.txt"


def binary(name, env):
    """A built binary: $env, else target/release/NAME (under CARGO_TARGET_DIR when set)."""
    if env in os.environ:
        return os.environ[env]
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return str(target / "release" / name)


class Server:
    """A resnet-serve process on free ports, serving the digits classifier."""

    def __init__(self, *extra, env=None):
        self.proc = subprocess.Popen(
            [binary("resnet-serve", "RESNET_SERVE_BIN"), "--weights", str(WEIGHTS),
             "--labels", str(LABELS), "--size", "32", "--resize", "32",
             "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", *extra],
            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
        self.http = self.grpc = None
        # The gRPC line comes first; the HTTP line last, once both listen.
        for line in self.proc.stderr:
            if "over gRPC on " in line:
                self.grpc = line.split("over gRPC on ")[1].strip()
            if "over HTTP on " in line:
                self.http = line.split("over HTTP on ")[1].strip()
                break
        if not (self.http and self.grpc):
            self.proc.kill()
            raise AssertionError("resnet-serve exited before listening")
        # Keep draining stderr so that the server never blocks on it.
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def client(self, protocol):
        """A tritonclient of `protocol` ("http" or "grpc")."""
        if protocol == "http":
            import tritonclient.http as httpclient
            return httpclient.InferenceServerClient(url=self.http, concurrency=8)
        import tritonclient.grpc as grpcclient
        return grpcclient.InferenceServerClient(url=self.grpc)

    def metric(self, name):
        """A Prometheus metric, summed over its labels."""
        text = urllib.request.urlopen(f"http://{self.http}/metrics", timeout=30).read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if re.match(re.escape(name) + r"[ {]", line))

    def stop(self):
        self.proc.terminate()
        assert self.proc.wait(timeout=30) == 0
