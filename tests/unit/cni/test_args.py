"""CNI_ARGS parsing and formatting."""

from __future__ import annotations

import pytest

from pymultus.cni.args import format_cni_args, parse_cni_args
from pymultus.cni.errors import InvalidEnvironmentError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", []),
        ("IgnoreUnknown=1", [("IgnoreUnknown", "1")]),
        (
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
            [("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", "default"), ("K8S_POD_NAME", "web-0")],
        ),
        ("TOKEN=YWJj==;X=a=b=c", [("TOKEN", "YWJj=="), ("X", "a=b=c")]),
        (" K = v ; K2=v2 ", [("K", "v"), ("K2", "v2")]),
        ("K=", [("K", "")]),
        ("K=1;", [("K", "1")]),
        ("A=1;A=2", [("A", "1"), ("A", "2")]),
    ],
)
def test_parse(value: str, expected: list[tuple[str, str]]) -> None:
    assert parse_cni_args(value) == expected


@pytest.mark.parametrize(("value", "bad"), [("A=1;novalue", "novalue"), ("=v", "=v")])
def test_parse_refuses_bad_pair_naming_it(value: str, bad: str) -> None:
    with pytest.raises(InvalidEnvironmentError) as info:
        parse_cni_args(value)
    assert info.value.field == "CNI_ARGS"
    assert info.value.code == 4
    assert repr(bad) in info.value.msg


def test_format_round_trips() -> None:
    pairs = [("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web-0"), ("TOKEN", "a=b")]
    text = format_cni_args(pairs)
    assert text == "IgnoreUnknown=1;K8S_POD_NAME=web-0;TOKEN=a=b"
    assert parse_cni_args(text) == pairs


def test_format_empty() -> None:
    assert format_cni_args([]) == ""


@pytest.mark.parametrize("pair", [("", "v"), ("a;b", "v"), ("a=b", "v"), ("k", "x;y")])
def test_format_refuses_pairs_that_would_not_parse_back(pair: tuple[str, str]) -> None:
    with pytest.raises(InvalidEnvironmentError) as info:
        format_cni_args([pair])
    assert info.value.field == "CNI_ARGS"
