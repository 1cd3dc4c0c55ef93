"""Webhook URLs reach only public addresses: every bypass spelling is refused before any
connection (and, for IP literals, before any DNS lookup); DNS answers are vetted all of them;
deliveries re-validate and connect to the address they validated, never resolving twice.

The test runner sets WEBHOOK_ALLOW_LOOPBACK=1 for the whole suite; tests here turn it off
unless they are about it.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from accounts import webhooks
from accounts.models import User, WebhookEvent
from tests.accounts.test_webhooks import Receiver

PUBLIC = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"


@pytest.fixture
def no_loopback(settings) -> None:
    settings.WEBHOOK_ALLOW_LOOPBACK = False


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any outbound connection attempt fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        pytest.fail(f"a connection was attempted: {args!r}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        pytest.fail(f"a DNS lookup was made: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)


_real_getaddrinfo = socket.getaddrinfo


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class FakeDns:
    """socket.getaddrinfo answering names from a table and counting those lookups.

    IP literals go to the real function (no DNS happens for them): socket.create_connection
    passes its numeric address through getaddrinfo too.
    """

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    def __call__(self, host: str, port: object, *args: object, **kwargs: object) -> list:
        if _is_ip(host):
            return _real_getaddrinfo(host, port, *args, **kwargs)
        self.lookups.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        result = []
        for address in self.answers[host]:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr = (address, port, 0, 0) if family == socket.AF_INET6 else (address, port)
            result.append((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
        return result


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, list[str]]], FakeDns]:
    def install(answers: dict[str, list[str]]) -> FakeDns:
        fake = FakeDns(answers)
        monkeypatch.setattr(socket, "getaddrinfo", fake)
        return fake

    return install


# Literal spellings of internal addresses: refused with no DNS lookup and no connection.
LITERAL_BYPASSES = [
    ("http://127.0.0.1/", "127.0.0.1 (loopback)"),
    ("http://2130706433/", "127.0.0.1 (loopback)"),
    ("http://0x7f.1/", "127.0.0.1 (loopback)"),
    ("http://0x7f000001/", "127.0.0.1 (loopback)"),
    ("http://0177.0.0.1/", "127.0.0.1 (loopback)"),
    ("http://017700000001/", "127.0.0.1 (loopback)"),
    ("http://127.1/", "127.0.0.1 (loopback)"),
    ("http://127.0.1/", "127.0.0.1 (loopback)"),
    ("http://127.0.0.1./", "127.0.0.1 (loopback)"),
    ("http://127.0.0.1:8080/admin", "127.0.0.1 (loopback)"),
    ("https://127.0.0.1:443/", "127.0.0.1 (loopback)"),
    ("HTTP://127.0.0.1/", "127.0.0.1 (loopback)"),
    ("http://127.255.255.254/", "127.255.255.254 (loopback)"),
    ("http://[::1]/", "::1 (loopback)"),
    ("http://[::1]:8080/", "::1 (loopback)"),
    ("http://[0:0:0:0:0:0:0:1]/", "::1 (loopback)"),
    ("http://[::ffff:127.0.0.1]/", "::ffff:7f00:1 (loopback)"),
    ("http://[::ffff:7f00:1]/", "::ffff:7f00:1 (loopback)"),
    ("http://[::ffff:10.0.0.1]/", "::ffff:a00:1 (private)"),
    ("http://[::ffff:169.254.169.254]/", "::ffff:a9fe:a9fe (link-local)"),
    ("http://[2002:7f00:1::]/", "2002:7f00:1:: (6to4 of loopback)"),
    ("http://[64:ff9b::7f00:1]/", "64:ff9b::7f00:1 (reserved)"),
    ("http://0.0.0.0/", "0.0.0.0 (unspecified)"),
    ("http://0/", "0.0.0.0 (unspecified)"),
    ("http://[::]/", ":: (unspecified)"),
    ("http://10.0.0.5/", "10.0.0.5 (private)"),
    ("http://10.1/", "10.0.0.1 (private)"),
    ("http://172.16.0.1/", "172.16.0.1 (private)"),
    ("http://172.31.255.255/", "172.31.255.255 (private)"),
    ("http://192.168.1.1/", "192.168.1.1 (private)"),
    ("http://0xc0.0xa8.1.1/", "192.168.1.1 (private)"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 (link-local)"),
    ("http://2852039166/", "169.254.169.254 (link-local)"),
    ("http://169.254.1.1/", "169.254.1.1 (link-local)"),
    ("http://100.64.0.1/", "100.64.0.1 (non-public)"),
    ("http://100.127.255.254/", "100.127.255.254 (non-public)"),
    ("http://[fd00::1]/", "fd00::1 (private)"),
    ("http://[fc00::1]/", "fc00::1 (private)"),
    ("http://[fe80::1]/", "fe80::1 (link-local)"),
    ("http://[fec0::1]/", "fec0::1 (site-local)"),
    ("http://224.0.0.1/", "224.0.0.1 (multicast)"),
    ("http://239.255.255.250/", "239.255.255.250 (multicast)"),
    ("http://[ff02::1]/", "ff02::1 (multicast)"),
    ("http://240.0.0.1/", "240.0.0.1 (private)"),
    ("http://255.255.255.255/", "255.255.255.255 (private)"),
    ("http://192.0.2.1/", "192.0.2.1 (private)"),
    ("http://198.18.0.1/", "198.18.0.1 (private)"),
    ("http://\uff11\uff12\uff17.0.0.1/", "127.0.0.1 (loopback)"),
    ("http://127\u30020\u30020\u30021/", "127.0.0.1 (loopback)"),
]

MALFORMED = [
    ("http://evil.com@127.0.0.1/", "must not contain a user name"),
    ("http://user:pass@example.com/", "must not contain a user name"),
    ("http://127.0.0.1%2f@example.com/", "must not contain a user name"),
    ("http://example.com%2f@127.0.0.1/", "must not contain a user name"),
    ("http://127.0.0.1%2eexample.com/", "host name is invalid"),
    ("http://example.com\\@127.0.0.1/", "backslashes"),
    ("http://127.0.0.1\t.example.com/", "control characters"),
    ("http://exa mple.com/", "spaces"),
    ("ftp://example.com/", "https:// or http://"),
    ("file:///etc/passwd", "https:// or http://"),
    ("gopher://127.0.0.1:6379/_INFO", "https:// or http://"),
    ("//example.com/hook", "https:// or http://"),
    ("example.com/hook", "https:// or http://"),
    ("http:///hook", "no host"),
    ("http://localhost/", "fully qualified"),
    ("http://localhost./", "fully qualified"),
    ("http://metadata/computeMetadata/v1/", "fully qualified"),
    ("http://1.2.3.4.5/", "not a valid IPv4"),
    ("http://256.0.0.1/", "not a valid IPv4"),
    ("http://0x100.0.0.1/", "not a valid IPv4"),
    ("http://08.0.0.1/", "not a valid IPv4"),
    ("http://example.123/", "not a valid IPv4"),
    ("http://4294967296/", "not a valid IPv4"),
    ("http://[fe80::1%25eth0]/", "zone identifiers"),
    ("http://[::1/", "malformed"),
    ("http://[not-ipv6]/", "malformed"),
    ("http://example.com:0/", "port is invalid"),
    ("http://example.com:65536/", "malformed"),
    ("http://example.com:http/", "malformed"),
    ("http://a..example.com/", "host name is invalid"),
    ("", "Enter a URL"),
    ("http://example.com/" + "a" * 500, "longer than 500"),
]


@pytest.mark.parametrize(("url", "reason"), LITERAL_BYPASSES, ids=[u for u, _ in LITERAL_BYPASSES])
def test_literal_internal_addresses_are_refused_without_dns_or_connection(
    url, reason, no_loopback, no_dns, no_connections
):
    with pytest.raises(webhooks.UnsafeUrl) as refused:
        webhooks.check_url(url)

    assert f"reaches {reason}: webhooks go only to public addresses" in str(refused.value)


@pytest.mark.parametrize(("url", "reason"), MALFORMED, ids=[u[:60] for u, _ in MALFORMED])
def test_ambiguous_or_malformed_urls_are_refused_without_dns_or_connection(
    url, reason, no_loopback, no_dns, no_connections
):
    with pytest.raises(webhooks.UnsafeUrl) as refused:
        webhooks.check_url(url)

    assert reason in str(refused.value)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [u for u, _ in LITERAL_BYPASSES[::5]] + [u for u, _ in MALFORMED[::4]],
)
def test_saving_a_refused_url_changes_nothing(make_user, url, no_loopback, no_dns, no_connections):
    user = make_user()
    before = User.objects.filter(pk=user.id).values().get()

    with pytest.raises(webhooks.ApiError) as refused:
        webhooks.update_settings(user_id=user.id, url=url)

    assert (refused.value.code, refused.value.param) == ("invalid_request", "url")
    assert User.objects.filter(pk=user.id).values().get() == before


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        (["10.0.0.5"], "10.0.0.5 (private)"),
        ([PUBLIC, "10.0.0.5"], "10.0.0.5 (private)"),
        (["10.0.0.5", PUBLIC], "10.0.0.5 (private)"),
        ([PUBLIC, "127.0.0.1"], "127.0.0.1 (loopback)"),
        (["169.254.169.254"], "169.254.169.254 (link-local)"),
        ([PUBLIC_V6, "fd12:3456::1"], "fd12:3456::1 (private)"),
        (["::ffff:192.168.0.1"], "::ffff:192.168.0.1 (private)"),
        (["100.100.100.200"], "100.100.100.200 (non-public)"),
        (["0.0.0.0"], "0.0.0.0 (unspecified)"),
    ],
)
def test_a_name_is_refused_when_any_address_it_resolves_to_is_internal(
    answers, reason, dns, no_loopback, no_connections
):
    lookups = dns({"hooks.example.com": answers})

    with pytest.raises(webhooks.UnsafeUrl) as refused:
        webhooks.check_url("https://hooks.example.com/clawwits")

    assert f"reaches {reason}" in str(refused.value)
    assert lookups.lookups == ["hooks.example.com"]


def test_a_name_that_does_not_resolve_is_refused(dns, no_loopback, no_connections):
    dns({})

    with pytest.raises(webhooks.UnsafeUrl) as refused:
        webhooks.check_url("https://nowhere.example.com/")

    assert "does not resolve" in str(refused.value)


def test_a_name_with_only_public_addresses_is_accepted_without_connecting(
    dns, no_loopback, no_connections
):
    dns({"hooks.example.com": [PUBLIC, PUBLIC_V6]})

    target = webhooks.check_url("https://Hooks.Example.COM.:8443/in?x=1#frag")

    assert target == webhooks.Target(
        webhooks.ParsedUrl("https", "hooks.example.com", 8443, "/in?x=1", None), (PUBLIC, PUBLIC_V6)
    )


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://8.8.8.8/", "8.8.8.8"),
        ("http://134744072/", "8.8.8.8"),
        ("http://\uff18.\uff18.\uff18.\uff18/", "8.8.8.8"),
        ("https://[2606:4700:4700::1111]/", "2606:4700:4700::1111"),
        ("https://[::ffff:8.8.8.8]/", "::ffff:808:808"),
    ],
)
def test_public_literals_are_accepted_without_dns(url, host, no_loopback, no_dns, no_connections):
    target = webhooks.check_url(url)

    assert (target.url.host, target.addresses) == (host, (host,))


def test_idn_hosts_are_resolved_in_their_ascii_form(dns, no_loopback, no_connections):
    lookups = dns({"xn--bcher-kva.example": [PUBLIC]})

    target = webhooks.check_url("https://bücher.example/hook")

    assert (target.url.host, lookups.lookups) == (
        "xn--bcher-kva.example",
        ["xn--bcher-kva.example"],
    )


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("http://127.0.0.1:8080/", True),
        ("http://127.9.9.9/", True),
        ("http://[::1]/", True),
        ("http://[::ffff:127.0.0.1]/", True),
        ("http://0x7f.1/", True),
        ("http://0.0.0.0/", False),
        ("http://10.0.0.5/", False),
        ("http://169.254.169.254/", False),
        ("http://[fe80::1]/", False),
        ("http://[2002:7f00:1::]/", False),
        ("http://localhost/", False),
    ],
)
def test_allow_loopback_opens_loopback_and_nothing_else(
    url, accepted, settings, no_dns, no_connections
):
    settings.WEBHOOK_ALLOW_LOOPBACK = True

    if accepted:
        assert webhooks.check_url(url).addresses
    else:
        with pytest.raises(webhooks.UnsafeUrl):
            webhooks.check_url(url)


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("8.8.8.8", None),
        ("1.1.1.1", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("2002:808:808::", None),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.255.255.255", "private"),
        ("100.64.0.0", "non-public"),
        ("169.254.169.254", "link-local"),
        ("fe80::abcd", "link-local"),
        ("fd00:ec2::254", "private"),
        ("224.0.0.251", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("2001:db8::1", "private"),
        ("not-an-ip", "not an IP address"),
    ],
)
def test_address_problem_names_why_an_address_is_not_public(address, problem):
    assert webhooks.address_problem(address, allow_loopback=False) == problem


# --- At delivery time --------------------------------------------------------------------------


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


@pytest.mark.django_db
def test_delivery_refuses_a_name_that_now_resolves_inward_without_connecting(
    make_user, dns, no_loopback, monkeypatch
):
    # Given a URL accepted while its name pointed at a public address
    answers = {"hooks.example.com": [PUBLIC]}
    lookups = dns(answers)
    user = make_user()
    webhooks.update_settings(user_id=user.id, url="https://hooks.example.com/in")
    event = webhooks.send_test_event(user_id=user.id)

    # When the name is rebound to the metadata service and the event is delivered
    answers["hooks.example.com"] = ["169.254.169.254"]

    def refuse(*args: object, **kwargs: object) -> None:
        pytest.fail(f"a connection was attempted: {args!r}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    outcome = webhooks.deliver(event_id=event.id)

    # Then nothing was sent, and the attempt counts as failed (to be retried)
    event.refresh_from_db()
    assert lookups.lookups == ["hooks.example.com", "hooks.example.com"]
    assert (outcome.state, outcome.status) == ("pending", None)
    assert "169.254.169.254 (link-local)" in event.last_error
    assert (event.state, event.attempts) == ("pending", 1)


@pytest.mark.django_db
def test_delivery_connects_to_the_address_it_validated_and_resolves_once(
    make_user, dns, receiver, monkeypatch, settings
):
    # Given a name answering loopback (allowed here) to two lookups, then 10.0.0.5 to any more
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    answers = iter([["127.0.0.1"], ["127.0.0.1"], ["10.0.0.5"], ["10.0.0.5"]])
    resolved: list[str] = []

    def rebinding(host: str, port: object, *args: object, **kwargs: object) -> list:
        if _is_ip(host):
            return _real_getaddrinfo(host, port, *args, **kwargs)
        resolved.append(host)
        return FakeDns({host: next(answers)})(host, port)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    connected: list[tuple] = []
    real_create_connection = socket.create_connection

    def recording(address: tuple, *args: object, **kwargs: object) -> socket.socket:
        connected.append(address)
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", recording)
    user = make_user()
    url = f"http://hooks.example.com:{receiver.port}/in"
    webhooks.update_settings(user_id=user.id, url=url)
    event = webhooks.send_test_event(user_id=user.id)

    # When it is delivered
    outcome = webhooks.deliver(event_id=event.id)

    # Then one lookup served both the check and the connection, made to the validated address
    assert resolved == ["hooks.example.com", "hooks.example.com"]  # saving, then delivering
    assert connected == [("127.0.0.1", receiver.port)]
    assert outcome.state == "delivered"
    [request] = receiver.requests
    assert request.headers["Host"] == f"hooks.example.com:{receiver.port}"
    assert WebhookEvent.objects.get(pk=event.id).attempts == 1


@pytest.mark.django_db
def test_a_redirect_is_not_followed(make_user, settings):
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    hits: list[str] = []

    class Redirecting(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            hits.append(self.path)
            self.send_response(307)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        user = make_user()
        webhooks.update_settings(
            user_id=user.id, url=f"http://127.0.0.1:{server.server_address[1]}/in"
        )
        event = webhooks.send_test_event(user_id=user.id)

        outcome = webhooks.deliver(event_id=event.id)
    finally:
        server.shutdown()
        server.server_close()

    assert (outcome.state, outcome.status, outcome.error, hits) == (
        "pending",
        307,
        "HTTP 307",
        ["/in"],
    )


@pytest.fixture
def tls_receiver(tmp_path):
    """An HTTPS receiver on 127.0.0.1 with a self-signed certificate for hooks.example.com."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=hooks.example.com", "-addext", "subjectAltName=DNS:hooks.example.com"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    seen: dict[str, list] = {"sni": [], "hosts": []}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen["hosts"].append(self.headers["Host"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: seen["sni"].append(name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], cert, seen
    server.shutdown()
    server.server_close()


@pytest.mark.django_db
@pytest.mark.parametrize("trusted", [True, False])
def test_https_delivery_pins_the_address_and_verifies_the_host_name(
    make_user, dns, tls_receiver, monkeypatch, settings, trusted
):
    # Given hooks.example.com resolving to the local TLS receiver, its certificate trusted or not
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    port, cert, seen = tls_receiver
    if trusted:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    dns({"hooks.example.com": ["127.0.0.1"]})
    user = make_user()
    webhooks.update_settings(user_id=user.id, url=f"https://hooks.example.com:{port}/in")
    event = webhooks.send_test_event(user_id=user.id)

    # When the event is delivered
    outcome = webhooks.deliver(event_id=event.id)

    # Then TLS named the host (SNI) while connecting to the pinned address, and the certificate
    # decided: delivered when trusted, a TLS error otherwise
    assert seen["sni"] == ["hooks.example.com"]
    if trusted:
        assert (outcome.state, outcome.status) == ("delivered", 204)
        assert seen["hosts"] == [f"hooks.example.com:{port}"]
    else:
        assert (outcome.state, outcome.status) == ("pending", None)
        assert outcome.error == "TLS error: SSLCertVerificationError"
        assert seen["hosts"] == []
