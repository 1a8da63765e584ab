"""Colour-space conversion with OpenColorIO's built-in cg-config (offline, real processors)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from shotpass_server.errors import InvalidInput
from shotpass_server.frames.colour import SRGB_ENCODED, ColourSpaces

LINEAR_709 = "Linear Rec.709 (sRGB)"


@pytest.fixture(scope="module")
def spaces() -> ColourSpaces:
    return ColourSpaces()


def hdr_samples() -> np.ndarray:
    rng = np.random.default_rng(7)
    rgb = rng.uniform(-0.5, 4.0, size=(64, 48, 3)).astype(np.float32)
    rgb[0, 0] = (4.0, -0.5, 0.0)
    rgb[0, 1] = (1.0, 0.18, 1e-6)
    rgb[0, 2] = (100.0, -3.0, 0.5)
    return rgb


def test_names_and_scene_linear(spaces: ColourSpaces) -> None:
    names = spaces.names()
    assert spaces.scene_linear == "ACEScg"
    assert {"ACEScg", "ACES2065-1", LINEAR_709, SRGB_ENCODED} <= set(names)
    assert SRGB_ENCODED == "sRGB Encoded Rec.709 (sRGB)"


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("ACEScg", "ACEScg"),
        ("acescg", "ACEScg"),
        ("lin_ap1", "ACEScg"),
        ("srgb_tx", SRGB_ENCODED),
        ("lin_srgb", LINEAR_709),
        ("scene_linear", "ACEScg"),
    ],
)
def test_check_accepts_names_aliases_and_roles(spaces: ColourSpaces, given: str, canonical: str) -> None:
    assert spaces.check(given) == canonical


@pytest.mark.parametrize("bad", ["nope", "", "   "])
def test_check_rejects_unknown_with_examples(spaces: ColourSpaces, bad: str) -> None:
    with pytest.raises(InvalidInput) as info:
        spaces.check(bad)
    message = str(info.value)
    assert f"unknown colour space {bad!r}" in message
    assert "ACEScg" in message and LINEAR_709 in message


def test_convert_rejects_unknown_space(spaces: ColourSpaces) -> None:
    with pytest.raises(InvalidInput, match="unknown colour space 'nope'"):
        spaces.convert(hdr_samples(), "ACEScg", "nope")


def test_known_values_linear_to_srgb(spaces: ColourSpaces) -> None:
    lin = np.array([[[0.18, 1.0, 0.0]]], dtype=np.float32)
    encoded = spaces.convert(lin, LINEAR_709, SRGB_ENCODED)
    # IEC 61966-2-1: 1.055 * 0.18 ** (1 / 2.4) - 0.055
    assert encoded[0, 0] == pytest.approx([0.4613561, 1.0, 0.0], abs=2e-6)


@pytest.mark.parametrize("linear", ["ACEScg", LINEAR_709])
def test_round_trip_keeps_hdr_and_negative_values(spaces: ColourSpaces, linear: str) -> None:
    lin = hdr_samples()
    encoded = spaces.convert(lin, linear, SRGB_ENCODED)
    assert np.isfinite(encoded).all()
    assert not np.allclose(encoded, lin)  # a real conversion happened
    back = spaces.convert(encoded, SRGB_ENCODED, linear)
    assert np.isfinite(back).all()
    np.testing.assert_allclose(back, lin, rtol=1e-5, atol=2e-5)
    assert back[0, 0] == pytest.approx([4.0, -0.5, 0.0], abs=2e-5)


def test_same_space_is_an_exact_copy(spaces: ColourSpaces) -> None:
    rgb = hdr_samples()
    rgb[1, 1] = (np.nan, np.inf, -np.inf)
    out = spaces.convert(rgb, "ACEScg", "lin_ap1")
    assert out is not rgb and not np.shares_memory(out, rgb)
    assert out.tobytes() == rgb.tobytes()


def test_output_is_new_contiguous_float32_and_input_untouched(spaces: ColourSpaces) -> None:
    rgb = hdr_samples()
    before = rgb.copy()
    strided = rgb[:, ::2]
    assert not strided.flags.c_contiguous
    out = spaces.convert(strided, "ACEScg", SRGB_ENCODED)
    assert out.dtype == np.float32 and out.flags.c_contiguous and out.shape == strided.shape
    assert rgb.tobytes() == before.tobytes()
    np.testing.assert_array_equal(out, spaces.convert(np.ascontiguousarray(strided), "ACEScg", SRGB_ENCODED))


def test_float16_input(spaces: ColourSpaces) -> None:
    half = hdr_samples().astype(np.float16)
    out = spaces.convert(half, "ACEScg", SRGB_ENCODED)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, spaces.convert(half.astype(np.float32), "ACEScg", SRGB_ENCODED))


def test_bad_shape(spaces: ColourSpaces) -> None:
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        spaces.convert(np.zeros((4, 4, 4), np.float32), "ACEScg", SRGB_ENCODED)


def test_threads_share_cached_processors(spaces: ColourSpaces) -> None:
    rgb = hdr_samples()
    expected = spaces.convert(rgb, "ACES2065-1", SRGB_ENCODED)
    results: list[np.ndarray] = []

    def work() -> None:
        for _ in range(5):
            results.append(spaces.convert(rgb, "ACES2065-1", SRGB_ENCODED))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 20
    assert all(r.tobytes() == expected.tobytes() for r in results)


def test_bad_config() -> None:
    with pytest.raises(InvalidInput, match="cannot load the colour config"):
        ColourSpaces("ocio://no-such-config")


# ---------------------------------------------------------------- the studio's config: $OCIO


def _server(tmp_path, **kwargs):
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    return ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "d", **kwargs))


def test_ocio_names_the_default_config_and_the_built_in_is_the_fallback(tmp_path, monkeypatch) -> None:
    import PyOpenColorIO as ocio

    from shotpass_client import Client
    from shotpass_server.config import BUILTIN_COLOUR_CONFIG, ServerConfig, load_config

    show = tmp_path / "show.ocio"  # a show config with camera spaces the built-in CG config lacks
    show.write_text(ocio.Config.CreateFromFile("ocio://studio-config-latest").serialize())
    monkeypatch.setenv("OCIO", str(show))
    srv = _server(tmp_path)
    srv.start()
    try:
        with Client(srv.address) as client:
            info = client.server_info()
        assert info.colour_config == str(show)
        assert "ARRI LogC3 (EI800)" in info.colour_spaces
    finally:
        srv.stop(0.5)
    # [colour] config in the server's config file still wins over $OCIO.
    toml = tmp_path / "shotpass.toml"
    toml.write_text('[colour]\nconfig = "ocio://cg-config-latest"\n')
    assert load_config(toml).colour_config == "ocio://cg-config-latest"
    monkeypatch.delenv("OCIO")
    assert ServerConfig().colour_config == BUILTIN_COLOUR_CONFIG


def test_an_unreadable_ocio_stops_serve_with_one_clear_line(tmp_path, monkeypatch, capsys) -> None:
    from shotpass_server.cli import main

    monkeypatch.setenv("OCIO", str(tmp_path / "missing.ocio"))
    code = main(["serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert "cannot load the colour config" in err[-1] and "missing.ocio" in err[-1] and "$OCIO" in err[-1]
    assert "ocio://cg-config-latest" in err[-1]


def test_a_config_spelling_the_models_space_otherwise_works_and_one_without_it_fails_at_start(tmp_path) -> None:
    import PyOpenColorIO as ocio

    # An ACES-1.x-style spelling of the space image models work in: found through its other names.
    text = ocio.Config.CreateFromFile("ocio://cg-config-latest").serialize()
    start = text.index("name: sRGB Encoded Rec.709 (sRGB)")
    aliases_end = text.index("\n", text.index("aliases:", start))
    text = text[:start] + "name: sRGB - Texture" + text[aliases_end:]
    text = text.replace("sRGB Encoded Rec.709 (sRGB)", "sRGB - Texture")
    aces1 = tmp_path / "aces1.ocio"
    aces1.write_text(text)
    assert ColourSpaces(str(aces1)).check(SRGB_ENCODED) == "sRGB - Texture"
    # A config with no such space at all: the server refuses to start, naming the config, space and model.
    raw = tmp_path / "raw.ocio"
    raw.write_text(ocio.Config.CreateRaw().serialize())
    srv = _server(tmp_path, colour_config=str(raw))
    with pytest.raises(InvalidInput, match=r"raw.ocio' has no colour space 'sRGB Encoded Rec.709 \(sRGB\)'"):
        srv.start()
