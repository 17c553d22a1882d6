"""The service source allow-list: schemes, hosts (no internal addresses), local roots."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.errors import Forbidden, InvalidInput
from conveyor.settings import Settings
from conveyor.vcs.sources import SourcePolicy, allowed_protocols, check_source


def public(_host: str) -> list[str]:
    return ["140.82.112.3"]


def policy(tmp_path: Path, **settings: str) -> SourcePolicy:
    return SourcePolicy.of(Settings(home=tmp_path, **settings))  # type: ignore[arg-type]


def test_the_default_allows_https_to_public_hosts_and_nothing_local(tmp_path: Path) -> None:
    p = policy(tmp_path)
    src = check_source(p, "https://github.com/Acme/Shop.git", resolve=public)
    assert src.url == "https://github.com/Acme/Shop.git" and src.github_repository == "acme/shop"
    for refused in (
        "http://github.com/acme/shop.git",  # scheme
        "git@github.com:acme/shop.git",  # ssh (scp form)
        "ssh://git@github.com/acme/shop.git",
        "git://github.com/acme/shop.git",
        "file:///etc",
        str(tmp_path),  # a local checkout
        "ext::sh -c touch% /tmp/pwned",  # a transport helper
        "https://127.0.0.1/x.git",  # internal addresses, however spelled
        "https://[::1]/x.git",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.8/x.git",
    ):
        with pytest.raises(Forbidden):
            check_source(p, refused, resolve=public)
    assert allowed_protocols(p) == "https"


def test_a_public_name_that_resolves_to_an_internal_address_is_refused(tmp_path: Path) -> None:
    with pytest.raises(Forbidden, match="internal address"):
        check_source(policy(tmp_path), "https://evil.example/x.git", resolve=lambda _h: ["140.82.112.3", "127.0.0.1"])
    with pytest.raises(InvalidInput, match="does not resolve"):

        def fails(_h: str) -> list[str]:
            raise OSError("no such host")

        check_source(policy(tmp_path), "https://nowhere.invalid/x.git", resolve=fails)


def test_listed_hosts_only_and_a_listed_internal_host_is_trusted(tmp_path: Path) -> None:
    p = policy(tmp_path, source_hosts="git.internal, github.com", source_schemes="https,ssh")
    assert check_source(p, "https://git.internal/x.git", resolve=lambda _h: ["10.1.2.3"]).url
    assert check_source(p, "git@github.com:acme/shop.git", resolve=public).scheme == "ssh"
    with pytest.raises(Forbidden, match="not allowed"):
        check_source(p, "https://gitlab.com/x.git", resolve=public)
    assert allowed_protocols(p) == "https:ssh"


def test_local_checkouts_only_under_a_local_root_symlinks_resolved(tmp_path: Path) -> None:
    root, outside = tmp_path / "repos", tmp_path / "elsewhere"
    (root / "shop").mkdir(parents=True)
    outside.mkdir()
    (root / "link").symlink_to(outside)
    p = policy(tmp_path, source_local_roots=str(root))
    assert check_source(p, str(root / "shop")).local_path == (root / "shop").resolve()
    assert check_source(p, f"file://{root / 'shop'}").local_path == (root / "shop").resolve()
    for refused in (str(outside), str(root / ".." / "elsewhere")):
        with pytest.raises(Forbidden):
            check_source(p, refused)
    with pytest.raises(Forbidden) as info:
        check_source(p, str(root / "link"))
    assert str(outside) not in info.value.text  # what it resolves to on the server is not disclosed
    with pytest.raises(InvalidInput, match="absolute"):
        check_source(p, "repos/shop")
