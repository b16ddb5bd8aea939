"""Test helpers for the model-zoo tests: a local HTTP server and an official-style ResNet.

The server listens on 127.0.0.1 only, serves in-memory files, honours ``Range`` requests,
records every request, can be told to cut a response in the middle, to send no
``Content-Length`` (HTTP/1.0: the end of the body is the end of the connection, so a cut
looks exactly like a complete file to the client), to answer a path with a redirect, and to
speak https with a self-signed certificate (:func:`self_signed_certificate`; the client trusts
it through ``SSL_CERT_FILE``).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch
from torch import nn


class FileServer:
    """``with FileServer({"/a.bin": b"..."}) as srv: srv.url("/a.bin")``."""

    def __init__(self, files, tls=None):
        self.files = dict(files)
        self.requests = []  # (path, Range header or None)
        self.cut = {}  # path -> [bytes to send before cutting, how many responses to cut]
        self.no_length = set()  # paths answered without Content-Length
        self.redirects = {}  # path -> (status, Location)
        self.honour_range = True
        self.scheme = "https" if tls else "http"
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                with server._lock:
                    server.requests.append((self.path, rng))
                    cut = server.cut.get(self.path)
                    cut_now = cut is not None and cut[1] > 0
                    if cut_now:
                        cut[1] -= 1
                if self.path in server.redirects:
                    status, location = server.redirects[self.path]
                    self.send_response(status)
                    self.send_header("Location", location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                start, status = 0, 200
                m = re.match(r"bytes=(\d+)-$", rng or "")
                if m and server.honour_range:
                    start = int(m.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                body = data[start:]
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                if self.path not in server.no_length:
                    self.send_header("Content-Length", str(len(body)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if cut_now:
                    self.wfile.write(body[: cut[0]])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)  # the connection dies mid-file
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def __enter__(self):
        self.thread.start()
        return self

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def __exit__(self, *exc):
        self.close()


def self_signed_certificate(folder):
    """(certificate, key) for 127.0.0.1, made with the ``openssl`` command; point ``SSL_CERT_FILE`` at
    the certificate so that the client trusts it."""
    openssl = shutil.which("openssl")
    assert openssl, "the https tests need the openssl command (apt-get install openssl)"
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        + ["-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return cert, key


def refused_url(path: str = "/x.pth") -> str:
    """A 127.0.0.1 URL on a port nobody listens on (connection refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}{path}"


def split_bytes(data: bytes, n: int = 3) -> list[bytes]:
    """``data`` cut into ``n`` consecutive parts (the last one takes the remainder)."""
    step = len(data) // n
    return [data[i * step : (i + 1) * step if i < n - 1 else len(data)] for i in range(n)]


def targz_bytes(members: dict) -> bytes:
    """A .tar.gz holding ``{name: bytes}``, built in memory."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def torch_bytes(obj) -> bytes:
    """``torch.save(obj)`` as bytes (a zip archive, like every PyTorch >= 1.6 checkpoint)."""
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


class MarkerPayload:
    """Pickles to a call that creates ``path`` when fully unpickled: the stand-in for malicious code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (exec, (f"open({self.path!r}, 'w').close()",))


def write_manifest(path, models):
    path.write_text(json.dumps({"schema_version": 1, "models": models}), encoding="utf-8")
    return path


def entry_dict(name, files, assembled=None, **extra):
    d = {
        "name": name,
        "architecture": extra.pop("architecture", "resnet50"),
        "dataset": "imagenet-1k",
        "epochs": 1,
        "license": "test-only",
        "files": files,
        "assembled": assembled,
    }
    d.update(extra)
    return d


# ----------------------------------------------------------------------------------------
# An independent re-implementation of the *structure* of the official SFRIK / VICReg ResNet
# (input padded by one pixel, then a 7x7/2 convolution with padding 2; bottleneck blocks with
# the stride on the 3x3 convolution; no fc), written for these tests so that the converters
# are checked against a model that is not torchvision's.


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, width, stride):
        super().__init__()
        cout = width * 4
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class OfficialStyleResNet50(nn.Module):
    def __init__(self):
        super().__init__()
        self.padding = nn.ConstantPad2d(1, 0.0)
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=2, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = 64
        for i, (width, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3))):
            layers = []
            for b in range(blocks):
                layers.append(_Bottleneck(cin, width, 2 if (b == 0 and i > 0) else 1))
                cin = width * 4
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(self.padding(x)))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights *and* BatchNorm statistics, so that a lost buffer changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + 0.5 * torch.rand(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
                m.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=g)))
            elif isinstance(m, nn.Linear):
                m.weight.copy_(0.01 * torch.randn(m.weight.shape, generator=g))
                if m.bias is not None:
                    m.bias.zero_()
    return model.eval()
