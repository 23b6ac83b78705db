"""Triton's own clients (PyPI's `tritonclient[http,grpc]`) against the built `resnet-serve`,
over HTTP (JSON and the binary extension) and gRPC (raw and typed contents):

- the tensor model's logits equal `resnet infer` (and PyTorch's, assets/digits/expected.json);
- the image model and the classification extension equal `resnet classify --json`;
- concurrent clients, each with its own images, get their own answers;
- the bad-request corpus over gRPC gets the documented codes, and the server serves on;
- a full queue, a lost device and SIGTERM with requests in flight, over gRPC;
- serve/proto/*.proto declare what tritonclient's own descriptors declare.

Run from the repository root after `cargo build --release -p resnet-serve --bin resnet`:

    python3 -m venv /tmp/serve-venv
    /tmp/serve-venv/bin/pip install -r serve/tests/requirements.txt
    /tmp/serve-venv/bin/python -m pytest serve/tests -q

RESNET_SERVE_BIN and RESNET_BIN override the binaries' paths (default: target/release/…, under
CARGO_TARGET_DIR when set). Every server listens on 127.0.0.1 (free ports) and is stopped at
its test's end.
"""

import json
import re
import signal
import struct
import subprocess
import threading
import time

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from PIL import Image
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from serving import DIGITS, LABELS, ROOT, WEIGHTS, Server, binary

PROTO = ROOT / "serve" / "proto"
# f32 logits, relative to max(1, max|logit|) (as tests/golden.rs).
TOL = 1e-5
PROTOCOLS = ["http", "grpc"]
CLIENTS = {"http": httpclient, "grpc": grpcclient}


@pytest.fixture(scope="module")
def server():
    s = Server("--max-batch", "8", "--max-queue-delay-us", "2000")
    yield s
    s.stop()


def expected(n):
    images = json.loads((DIGITS / "expected.json").read_text())["images"]
    return sorted(images, key=lambda w: w["file"])[:n]


def preprocess(path):
    """torchvision's eval transform of a 32x32 digit: Resize 32 and CenterCrop 32 leave it
    as it is; gray replicated to RGB, ImageNet mean and std."""
    x = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    x = (x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    return x.transpose(2, 0, 1).astype(np.float32)


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        b = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_safetensors(path):
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    out = {}
    for name, t in json.loads(raw[8:8 + n]).items():
        if name != "__metadata__":
            assert t["dtype"] == "F32", t
            a, b = t["data_offsets"]
            out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], "<f4").reshape(t["shape"])
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """What the CLI says about the first 16 held-out digits: `resnet infer` on their
    preprocessed tensors (the first 8) and `resnet classify --json` on the files."""
    want = expected(16)
    files = [DIGITS / w["file"] for w in want]
    x = np.stack([preprocess(f) for f in files[:8]])
    d = tmp_path_factory.mktemp("reference")
    write_safetensors(d / "input.safetensors", {"input": x})
    resnet = binary("resnet", "RESNET_BIN")
    subprocess.run([resnet, "infer", "--weights", str(WEIGHTS), "--input", str(d / "input.safetensors"),
                    "--output", str(d / "logits.safetensors")], check=True, capture_output=True)
    out = subprocess.run([resnet, "classify", "--weights", str(WEIGHTS), "--labels", str(LABELS),
                          "--size", "32", "--resize", "32", "--top", "5", "--json", *map(str, files)],
                         check=True, capture_output=True, text=True).stdout
    return {
        "files": files,
        "x": x,
        "infer": read_safetensors(d / "logits.safetensors")["logits"],
        "framework": np.array([w["logits"] for w in want], np.float32),
        "classify": [c["top"] for c in json.loads(out)],
    }


def assert_close(got, want):
    got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
    assert got.shape == want.shape
    for g, w in zip(got, want):
        scale = max(1.0, float(np.abs(w).max()))
        assert np.abs(g - w).max() <= TOL * scale, (g, w)


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def assert_top_equals_classify(rows, tops):
    """`"probability:index:label"` rows against `resnet classify --json`'s tops."""
    assert len(rows) == len(tops)
    for row, top in zip(rows, tops):
        parsed = [(s.decode() if isinstance(s, bytes) else s).split(":") for s in row]
        assert [(int(i), label) for _, i, label in parsed] == \
            [(t["index"], t["label"]) for t in top[:len(row)]]
        for (p, _, _), t in zip(parsed, top):
            assert abs(float(p) - t["probability"]) <= 1e-6 + 1e-5 * t["probability"], (p, t)


def image_input(protocol, files):
    inp = CLIENTS[protocol].InferInput("image", [len(files)], "BYTES")
    inp.set_data_from_numpy(np.array([f.read_bytes() for f in files], dtype=np.object_))
    return inp


class Answers:
    """Collects async_infer's answers: `(result, error)` pairs."""

    def __init__(self):
        self.got, self.lock, self.done = [], threading.Lock(), threading.Semaphore(0)

    def __call__(self, result, error):
        with self.lock:
            self.got.append((result, error))
        self.done.release()

    def wait(self, n):
        for _ in range(n):
            assert self.done.acquire(timeout=60), f"{len(self.got)} of {n} answers"
        return self.got


def status_of(e):
    """The gRPC code tritonclient reports, e.g. "StatusCode.INVALID_ARGUMENT"."""
    return str(e.status())


# -- the .proto files ------------------------------------------------------------------------

def proto_declarations():
    """(message, field, number, type, repeated), (enum, value, number) and (rpc, in, out) of
    serve/proto/*.proto."""
    fields, values, rpcs = [], [], []
    for f in ["grpc_service.proto", "model_config.proto"]:
        stack = []
        for line in (PROTO / f).read_text().splitlines():
            line = line.split("//")[0].strip()
            if not line:
                continue
            m = re.fullmatch(r"(message|enum|oneof|service)\s+(\w+)\s*\{(\s*\})?", line)
            if m:
                if not m.group(3):
                    stack.append((m.group(1), m.group(2)))
                continue
            if line == "}":
                stack.pop()
                continue
            m = re.match(r"rpc\s+(\w+)\((\w+)\)\s+returns\s+\((\w+)\)", line)
            if m:
                rpcs.append(m.groups())
                continue
            if not stack or stack[-1][0] == "service":
                continue
            scope = ".".join(n for k, n in stack if k in ("message", "enum"))
            if stack[-1][0] == "enum":
                m = re.fullmatch(r"(\w+)\s*=\s*(\d+);", line)
                assert m, line
                values.append((scope, m.group(1), int(m.group(2))))
                continue
            m = re.fullmatch(r"(repeated\s+)?(map<\s*\w+\s*,\s*\w+\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+);", line)
            assert m, line
            fields.append((scope, m.group(3), int(m.group(4)), m.group(2), bool(m.group(1))))
    return fields, values, rpcs


def test_the_proto_files_declare_what_tritonclient_declares():
    from google.protobuf.descriptor import FieldDescriptor as F
    scalars = {"bool": F.TYPE_BOOL, "string": F.TYPE_STRING, "bytes": F.TYPE_BYTES,
               "int32": F.TYPE_INT32, "int64": F.TYPE_INT64, "uint32": F.TYPE_UINT32,
               "uint64": F.TYPE_UINT64, "float": F.TYPE_FLOAT, "double": F.TYPE_DOUBLE}
    pool = service_pb2.DESCRIPTOR.pool
    assert model_config_pb2.DESCRIPTOR.pool is pool
    fields, values, rpcs = proto_declarations()
    assert len(fields) > 60 and len(values) > 15 and len(rpcs) == 7
    for msg, name, number, ty, repeated in fields:
        f = pool.FindMessageTypeByName("inference." + msg).fields_by_name[name]
        where = f"{msg}.{name}"
        assert f.number == number, where
        if ty.startswith("map<"):
            assert f.message_type.GetOptions().map_entry, where
            assert f.is_repeated, where
            continue
        assert f.is_repeated == repeated, where
        if ty in scalars:
            assert f.type == scalars[ty], where
        else:
            full = (f.message_type or f.enum_type).full_name
            assert full == "inference." + ty or full.endswith("." + ty), (where, full)
    for enum, name, number in values:
        assert pool.FindEnumTypeByName("inference." + enum).values_by_name[name].number == number
    service = pool.FindServiceByName("inference.GRPCInferenceService")
    for name, inp, out in rpcs:
        m = service.methods_by_name[name]
        assert (m.input_type.name, m.output_type.name) == (inp, out), name


# -- answers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_health_metadata_config(server, protocol):
    c = server.client(protocol)
    assert c.is_server_live() and c.is_server_ready()
    assert c.is_model_ready("digits") and c.is_model_ready("digits_image")
    assert c.is_model_ready("digits", "1")
    as_json = {"as_json": True} if protocol == "grpc" else {}
    meta = c.get_model_metadata("digits", **as_json)
    inp = meta["inputs"][0]
    assert (inp["name"], inp["datatype"], [int(d) for d in inp["shape"]]) == ("input", "FP32", [-1, 3, 32, 32])
    out = meta["outputs"][0]
    assert (out["name"], out["datatype"], [int(d) for d in out["shape"]]) == ("logits", "FP32", [-1, 10])
    inp = c.get_model_metadata("digits_image", **as_json)["inputs"][0]
    assert (inp["datatype"], [int(d) for d in inp["shape"]]) == ("BYTES", [-1, 1])
    config = c.get_model_config("digits", **as_json)
    config = config.get("config", config)
    assert int(config["max_batch_size"]) == 8
    assert [int(d) for d in config["input"][0]["dims"]] == [3, 32, 32]
    assert int(config["dynamic_batching"]["max_queue_delay_microseconds"]) == 2000
    assert "classification" in c.get_server_metadata(**as_json)["extensions"]


@pytest.mark.parametrize("protocol,binary_data", [("http", False), ("http", True), ("grpc", None)])
def test_logits_equal_resnet_infer(server, reference, protocol, binary_data):
    m = CLIENTS[protocol]
    x = reference["x"]
    inp = m.InferInput("input", list(x.shape), "FP32")
    kw = {} if binary_data is None else {"binary_data": binary_data}
    inp.set_data_from_numpy(x, **kw)
    out = m.InferRequestedOutput("logits", **kw)
    result = server.client(protocol).infer("digits", [inp], outputs=[out], request_id="r1")
    logits = result.as_numpy("logits")
    assert logits.shape == (8, 10)
    assert result.get_response(**({"as_json": True} if protocol == "grpc" else {}))["id"] == "r1"
    assert_close(logits, reference["infer"])
    assert_close(logits, reference["framework"][:8])


def test_typed_grpc_contents_equal_raw(server, reference):
    """fp32_contents and bytes_contents (tritonclient sends raw_input_contents)."""
    stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(server.grpc))
    x = reference["x"][:3]
    req = service_pb2.ModelInferRequest(model_name="digits")
    t = req.inputs.add(name="input", datatype="FP32", shape=list(x.shape))
    t.contents.fp32_contents.extend(x.ravel().tolist())
    r = stub.ModelInfer(req)
    assert [int(d) for d in r.outputs[0].shape] == [3, 10]
    assert_close(np.frombuffer(r.raw_output_contents[0], "<f4").reshape(3, 10), reference["infer"][:3])
    req = service_pb2.ModelInferRequest(model_name="digits_image")
    t = req.inputs.add(name="image", datatype="BYTES", shape=[2])
    t.contents.bytes_contents.extend([f.read_bytes() for f in reference["files"][:2]])
    out = req.outputs.add(name="logits")
    out.parameters["classification"].int64_param = 2
    r = stub.ModelInfer(req)
    assert r.outputs[0].datatype == "BYTES" and list(r.outputs[0].shape) == [2, 2]
    raw, rows = r.raw_output_contents[0], []
    while raw:
        n = struct.unpack("<I", raw[:4])[0]
        rows.append(raw[4:4 + n])
        raw = raw[4 + n:]
    assert_top_equals_classify([rows[:2], rows[2:]], reference["classify"][:2])


@pytest.mark.parametrize("protocol,binary_data", [("http", False), ("http", True), ("grpc", None)])
def test_image_model_equals_classify(server, reference, protocol, binary_data):
    m = CLIENTS[protocol]
    files = reference["files"][:5]
    kw = {} if binary_data is None else {"binary_data": binary_data}
    c = server.client(protocol)
    logits = c.infer("digits_image", [image_input(protocol, files)],
                     outputs=[m.InferRequestedOutput("logits", **kw)]).as_numpy("logits")
    assert_close(logits, reference["framework"][:5])
    p = softmax(logits.astype(np.float64))
    for row, top in zip(p, reference["classify"]):
        assert list(np.argsort(-row, kind="stable")[:5]) == [t["index"] for t in top]
        for t in top:
            assert abs(row[t["index"]] - t["probability"]) <= 1e-6 + 1e-5 * t["probability"]
    top = c.infer("digits_image", [image_input(protocol, files)],
                  outputs=[m.InferRequestedOutput("logits", class_count=5, **kw)]).as_numpy("logits")
    assert top.shape == (5, 5)
    assert_top_equals_classify(top, reference["classify"][:5])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_concurrent_clients_get_their_own_answers(server, reference, protocol):
    """8 clients at once, each with its own 2 of 16 images, each answer checked."""
    files, tops = reference["files"], reference["classify"]
    errors, answered = [], []
    barrier = threading.Barrier(8)

    def client(t):
        try:
            c = server.client(protocol)
            barrier.wait(timeout=60)
            for i in (t, t + 8):
                top = c.infer("digits_image", [image_input(protocol, [files[i]])], outputs=[
                    CLIENTS[protocol].InferRequestedOutput("logits", class_count=3)]).as_numpy("logits")
                assert_top_equals_classify(top, [tops[i]])
                answered.append(i)
        except Exception as e:  # reported below, with the others
            errors.append((t, repr(e)))

    threads = [threading.Thread(target=client, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sorted(answered) == list(range(16))


# -- errors ----------------------------------------------------------------------------------

def tensor_input(shape, value=0.5, name="input", datatype="FP32"):
    inp = grpcclient.InferInput(name, list(shape), datatype)
    dtype = {"FP32": np.float32, "INT32": np.int32}[datatype]
    inp.set_data_from_numpy(np.full(shape, value, dtype))
    return inp


def raw_request(model="digits", shape=(1, 3, 32, 32), datatype="FP32", raw=(b"\0" * 12288,), **kw):
    req = service_pb2.ModelInferRequest(model_name=model, **kw)
    req.inputs.add(name="input" if model == "digits" else "image", datatype=datatype, shape=list(shape))
    req.raw_input_contents.extend(raw)
    return req


def test_bad_requests_over_grpc_get_their_code_and_say_what_was_expected():
    s = Server("--max-body", "200000", "--body-timeout-s", "1")
    try:
        c = s.client("grpc")
        channel = grpc.insecure_channel(s.grpc)
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        png = (DIGITS / expected(1)[0]["file"]).read_bytes()
        with_contents = raw_request(raw=())
        with_contents.inputs[0].contents.int_contents.extend([1] * 3072)
        both = raw_request()
        both.inputs[0].contents.fp32_contents.extend([0.5] * 3072)
        minus_k = raw_request()
        minus_k.outputs.add(name="logits").parameters["classification"].int64_param = -1
        # (what to send, code, piece of the message, counted as the model's failure)
        cases = [
            (("digits", [tensor_input((1, 3, 28, 28))]), "INVALID_ARGUMENT",
             "shape [1, 3, 28, 28]; expected `input` (FP32 [-1,3,32,32])", True),
            (("digits", [tensor_input((1, 3, 32, 32), name="x")]), "INVALID_ARGUMENT",
             "unknown input `x` for model `digits`", True),
            (("digits", [tensor_input((1, 3, 32, 32), datatype="INT32")]), "INVALID_ARGUMENT",
             "datatype `INT32`; expected `input` (FP32", True),
            (("digits", [tensor_input((9, 3, 32, 32))]), "INVALID_ARGUMENT",
             "batch of 9; expected 1 to 8", True),
            (("digits", [tensor_input((1, 3, 32, 32), np.nan)]), "INVALID_ARGUMENT",
             "holds NaN at element 0; expected finite", True),
            (("digits", [tensor_input((1, 3, 32, 32), np.inf)]), "INVALID_ARGUMENT", "holds inf", True),
            (("digits", [tensor_input((1, 3, 32, 32))], "", [grpcclient.InferRequestedOutput("probs")]),
             "INVALID_ARGUMENT", "unknown output `probs`", True),
            (("digits_image", [image_input("grpc", [DIGITS / "labels.txt"])]), "INVALID_ARGUMENT",
             "expected an encoded image file", True),
            (("nope", [tensor_input((1, 3, 32, 32))]), "NOT_FOUND",
             "unknown model `nope`; this server serves `digits` and `digits_image`", False),
            (("digits", [tensor_input((1, 3, 32, 32))], "2"), "NOT_FOUND", "unknown model version `2`", False),
            (raw_request(raw=(b"\0" * 100,)), "INVALID_ARGUMENT",
             "100 bytes of binary data; shape [1, 3, 32, 32] of FP32 needs 12288", True),
            (raw_request(raw=(b"\0" * 12288,) * 2), "INVALID_ARGUMENT", "2 raw_input_contents for 1 input", True),
            (raw_request(raw=()), "INVALID_ARGUMENT", "has no data", True),
            (with_contents, "INVALID_ARGUMENT", "carries int_contents; expected `input` (FP32", True),
            (both, "INVALID_ARGUMENT", "both contents and raw_input_contents", True),
            (raw_request(shape=(1, 3, -32, 32)), "INVALID_ARGUMENT", "cannot be negative", True),
            (minus_k, "INVALID_ARGUMENT", "classification must be a positive integer", True),
            (raw_request("digits_image", (1,), "BYTES", (struct.pack("<I", len(png) + 9) + png,)),
             "INVALID_ARGUMENT", "claims", True),
            (raw_request(raw=(b"\0" * 300_000,)), "INVALID_ARGUMENT", "over the limit of 200000 bytes", False),
        ]
        for send, code, text, _ in cases:
            with pytest.raises((InferenceServerException, grpc.RpcError)) as e:
                if isinstance(send, tuple):
                    c.infer(*send)
                else:
                    stub.ModelInfer(send, timeout=30)
            e = e.value
            got = (status_of(e), e.message()) if isinstance(e, InferenceServerException) \
                else (str(e.code()), e.details())
            assert got[0] == "StatusCode." + code and text in got[1], (text, got)
        # Bytes that are not a protobuf message, and a method we do not serve.
        garbage = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                      request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as e:
            garbage(b"\xff\xff\xff\xff not protobuf", timeout=30)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a well-formed inference.ModelInferRequest" in e.value.details()
        with pytest.raises(InferenceServerException) as e:
            c.get_inference_statistics("digits")
        assert status_of(e.value) == "StatusCode.UNIMPLEMENTED", e.value
        # It serves on, and counted each failure that reached a model.
        x = np.full((1, 3, 32, 32), 0.5, np.float32)
        inp = grpcclient.InferInput("input", [1, 3, 32, 32], "FP32")
        inp.set_data_from_numpy(x)
        assert c.infer("digits", [inp]).as_numpy("logits").shape == (1, 10)
        assert s.metric("nv_inference_request_success") == 1
        assert s.metric("nv_inference_request_failure") == sum(1 for *_, counted in cases if counted)
    finally:
        s.stop()


def test_a_full_queue_answers_unavailable_over_grpc():
    s = Server("--max-batch", "1", "--max-queue", "1", "--max-queue-delay-us", "0")
    try:
        c = s.client("grpc")
        codes = []
        for _ in range(5):
            answers = Answers()
            for _ in range(16):
                c.async_infer("digits", [tensor_input((1, 3, 32, 32), 0.25)], callback=answers)
            for r, e in answers.wait(16):
                if e is None:
                    assert r.as_numpy("logits").shape == (1, 10)
                    codes.append("OK")
                else:
                    assert status_of(e) == "StatusCode.UNAVAILABLE" and "queue is full" in e.message(), e
                    codes.append("UNAVAILABLE")
            if "UNAVAILABLE" in codes:
                break
        assert "UNAVAILABLE" in codes and "OK" in codes, codes
        assert c.infer("digits", [tensor_input((1, 3, 32, 32))]).as_numpy("logits").shape == (1, 10)
    finally:
        s.stop()


def test_a_lost_device_answers_unavailable_over_grpc():
    s = Server(env={"RESNET_FAILPOINT": "device-lost-after-batches:1"})
    try:
        c = s.client("grpc")
        assert c.infer("digits", [tensor_input((1, 3, 32, 32))]).as_numpy("logits").shape == (1, 10)
        for _ in range(3):
            with pytest.raises(InferenceServerException) as e:
                c.infer("digits", [tensor_input((1, 3, 32, 32))])
            assert status_of(e.value) == "StatusCode.UNAVAILABLE" and "device was lost" in e.value.message()
        assert c.is_server_live()
        assert not c.is_server_ready() and not c.is_model_ready("digits")
    finally:
        s.stop()


def test_sigterm_with_grpc_requests_in_flight_answers_them_and_exits_0(reference):
    s = Server("--max-batch", "8", "--max-queue-delay-us", "300000")
    c = s.client("grpc")
    answers = Answers()
    for f in reference["files"][:6]:
        c.async_infer("digits_image", [image_input("grpc", [f])], callback=answers)
    time.sleep(0.15)
    s.proc.send_signal(signal.SIGTERM)
    results = answers.wait(6)
    ok = 0
    for r, e in results:
        if e is None:
            assert r.as_numpy("logits").shape == (1, 10)
            ok += 1
        else:
            assert status_of(e) == "StatusCode.UNAVAILABLE", e
    assert ok > 0, results
    assert s.proc.wait(timeout=30) == 0
