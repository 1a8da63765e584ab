"""EXR decode/encode, colour selection and replacement on the real test EXRs (no mocks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenEXR
import pytest

from shotpass_server.errors import InvalidInput
from shotpass_server.frames.exr import (
    SOURCE_COMPRESSION_ATTR,
    SOURCE_LEVEL_MODE_ATTR,
    ExrImage,
    FrameError,
    add_provenance,
    box,
    decode_exr,
    encode_exr,
    finite,
    read_header_summary,
    replace_colour,
    select_colour,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
EXR_DIR = DATA / "exr"
pytestmark = pytest.mark.skipif(not EXR_DIR.is_dir(), reason=f"test EXRs not found at {EXR_DIR}")

# Files decode_exr rejects by design, with the reason.
REJECTED_ON_DECODE = {
    "openexr-images/v2/LowResLeftView/Trunks.exr": "deep scanline: must be flattened first",
}
# Files that decode but cannot be written back as they are.
REJECTED_ON_ENCODE = {
    "openexr-images/Chromaticities/Rec709_YC.exr": "RY/BY are subsampled 2x2; the binding cannot write them",
}
LOSSY = {"pxr24", "b44", "b44a", "dwaa", "dwab"}
PROVENANCE = {"renderId": "r-0001", "pass": "passthrough", "seed": 2**40, "sourceFrame": 1, "scale": 1.5}
PROVENANCE_TEXT = {
    "shotpass/renderId": "r-0001",
    "shotpass/pass": "passthrough",
    "shotpass/seed": "1099511627776",
    "shotpass/sourceFrame": "1",
    "shotpass/scale": "1.5",
}


def all_exrs() -> list[str]:
    if not EXR_DIR.is_dir():
        return []
    return sorted(p.relative_to(EXR_DIR).as_posix() for p in EXR_DIR.rglob("*.exr"))


def load(rel: str) -> ExrImage:
    return decode_exr((EXR_DIR / rel).read_bytes(), Path(rel).name)


def raw(rel: str) -> bytes:
    return (EXR_DIR / rel).read_bytes()


def round_trip(image: ExrImage) -> ExrImage:
    return decode_exr(encode_exr(image), image.source_name)


def bits(array: np.ndarray) -> bytes:
    """Raw bytes, so NaNs (and their payloads) compare too."""
    return np.ascontiguousarray(array).tobytes()


def same_attribute(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same_attribute, a, b))
    if isinstance(a, OpenEXR.IDManifest):
        return isinstance(b, OpenEXR.IDManifest) and a.size() == b.size() and a.find("id") == b.find("id")
    if isinstance(a, OpenEXR.OpaqueAttribute):
        return a.typeName == b.typeName and a.data == b.data
    if isinstance(a, OpenEXR.TileDescription):
        return repr(a) == repr(b)
    return type(a) is type(b) and a == b


def test_data_set_is_complete() -> None:
    files = all_exrs()
    assert len(files) == 33
    for rel in [*REJECTED_ON_DECODE, *REJECTED_ON_ENCODE]:
        assert rel in files


ROUND_TRIP_FILES = [f for f in all_exrs() if f not in REJECTED_ON_DECODE and f not in REJECTED_ON_ENCODE]


@pytest.mark.parametrize("rel", ROUND_TRIP_FILES)
def test_passthrough_round_trip_keeps_everything(rel: str) -> None:
    source = load(rel)
    back = round_trip(add_provenance(source, PROVENANCE))
    assert_same_image(source, back)
    for after in back.parts:
        for key, value in PROVENANCE_TEXT.items():
            assert after.header[key] == value


def assert_same_image(source: ExrImage, result: ExrImage) -> None:
    """Same parts, windows, aspect, channels and dtypes, every attribute, and bit-exact pixels."""
    assert len(result.parts) == len(source.parts) >= 1
    for before, after in zip(source.parts, result.parts):
        assert box(after.header, "dataWindow") == box(before.header, "dataWindow")
        assert box(after.header, "displayWindow") == box(before.header, "displayWindow")
        assert after.header["pixelAspectRatio"] == before.header["pixelAspectRatio"]
        assert list(after.channels) == list(before.channels)
        for name, pixels in before.channels.items():
            assert after.channels[name].dtype == pixels.dtype, name
            assert bits(after.channels[name]) == bits(pixels), name
        _assert_headers_kept(before.header, after.header)


def _assert_headers_kept(before: dict, after: dict) -> None:
    compression = before["compression"].name.removesuffix("_COMPRESSION").lower()
    for key, value in before.items():
        if key == "compression" and compression in LOSSY:
            assert after[key] == OpenEXR.ZIP_COMPRESSION
            assert after[SOURCE_COMPRESSION_ATTR] == compression
        elif key == "tiles" and value.mode != OpenEXR.ONE_LEVEL:
            assert (after[key].xSize, after[key].ySize) == (value.xSize, value.ySize)
            assert after[key].mode == OpenEXR.ONE_LEVEL
            assert after[SOURCE_LEVEL_MODE_ATTR] == value.mode.name
        elif key == "chunkCount" and compression in LOSSY:
            continue  # depends on the compression written
        else:
            assert key in after, key
            assert same_attribute(value, after[key]), (key, value, after[key])
    if compression not in LOSSY:
        assert SOURCE_COMPRESSION_ATTR not in after


def test_special_characters_in_metadata_survive() -> None:
    source = load("cryptomatte/special_chars.exr")
    back = round_trip(source)
    manifest = back.parts[0].header["cryptomatte/fbb35e3/manifest"]
    assert "равнина" in manifest and '\\"quote\\"' in manifest


def test_mipmap_reads_level_zero() -> None:
    image = load("openexr-images/MultiResolution/ColorCodedLevels.exr")
    assert image.parts[0].channels["R"].shape == (512, 512)


def test_subsampled_file_decodes_but_encode_says_why() -> None:
    image = load("openexr-images/Chromaticities/Rec709_YC.exr")
    assert image.parts[0].channels["RY"].shape == (203, 305)
    assert image.parts[0].sampling["RY"][:2] == (2, 2)
    with pytest.raises(FrameError, match=r"Rec709_YC\.exr: subsampled channels \(BY, RY\)"):
        encode_exr(image)


def test_header_values_the_binding_rejects_are_converted_not_dropped() -> None:
    source = load("openexr/test.exr")
    extra = {
        "np_int32": np.int32(7),
        "np_int64_big": np.int64(2**40),
        "big_int": 2**40,
        "flag": True,
        "np_float32": np.float32(0.5),
        "utf8_bytes": "héllo".encode(),
        "binary_bytes": b"\xff\xfe",
        "mapping": {"shot": "sh010", "frames": [1, 2]},
        "int_list": [1, 2, 3],
        "nothing": None,
        "int_matrix": np.eye(3, dtype=np.int64),
        "np_chromaticities": tuple(np.float32(v) for v in (0.64, 0.33, 0.3, 0.6, 0.15, 0.06, 0.3127, 0.329)),
    }
    source.parts[0].header.update(extra)
    header = round_trip(source).parts[0].header
    assert header["np_int32"] == 7
    assert header["np_int64_big"] == "1099511627776"
    assert header["big_int"] == "1099511627776"
    assert header["flag"] == 1
    assert header["np_float32"] == 0.5
    assert header["utf8_bytes"] == "héllo"
    assert header["binary_bytes"] == "base64://4="
    assert header["mapping"] == '{"frames": [1, 2], "shot": "sh010"}'
    assert header["int_list"] == "[1, 2, 3]"
    assert header["nothing"] == "null"
    assert header["int_matrix"] == "[[1, 0, 0], [0, 1, 0], [0, 0, 1]]"
    assert header["np_chromaticities"] == pytest.approx((0.64, 0.33, 0.3, 0.6, 0.15, 0.06, 0.3127, 0.329))


def test_read_header_summary() -> None:
    summary = read_header_summary(raw("openexr-images/Beachball/multipart.0001.exr"), "multipart.0001.exr")
    assert summary["part_count"] == 10
    first = summary["parts"][0]
    assert first["name"] == "rgba_right" and first["view"] == "right"
    assert first["dataWindow"] == (654, 245, 1530, 1120)
    assert first["displayWindow"] == (0, 0, 2047, 1555)
    assert first["channels"] == {"A": "HALF", "B": "HALF", "G": "HALF", "R": "HALF"}
    deep = read_header_summary(raw("openexr-images/v2/LowResLeftView/Trunks.exr"), "Trunks.exr")
    assert deep["parts"][0]["type"] == "deepscanline"
    yc = read_header_summary(raw("openexr-images/Chromaticities/Rec709_YC.exr"), "Rec709_YC.exr")
    assert yc["parts"][0]["subsampled"] == ["BY", "RY"]
    with pytest.raises(FrameError, match="not an OpenEXR file"):
        read_header_summary(b"\x89PNG\r\n\x1a\n", "x.png")


# --------------------------------------------------------------------------- rejected input


def test_deep_file_is_rejected() -> None:
    with pytest.raises(FrameError) as info:
        load("openexr-images/v2/LowResLeftView/Trunks.exr")
    message = str(info.value)
    assert "Trunks.exr" in message and "deep" in message and "flatten" in message
    assert isinstance(info.value, InvalidInput)


def test_deep_file_with_attributes_the_binding_cannot_parse_is_still_called_deep() -> None:
    # Deep files may carry `deepImageState`, which the OpenEXR binding refuses ("unsupported attribute type"):
    # the part type is read from the header's bytes, so the file is refused as deep, not as damaged.
    import struct

    data = raw("openexr-images/v2/LowResLeftView/Trunks.exr")
    state = b"deepImageState\0deepImageState\0" + struct.pack("<i", 1) + b"\x00"
    with_state = data[:8] + state + data[8:]
    with pytest.raises(FrameError) as info:
        decode_exr(with_state, "trunks.0001.exr")
    message = str(info.value)
    assert "trunks.0001.exr" in message and "deep EXR (deepscanline)" in message and "flatten" in message
    assert "damaged" not in message


def _flip_middle(data: bytes, count: int = 64) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes(255 - b for b in data[middle : middle + count]) + data[middle + count :]


def _first_half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _bad_utf8_attribute(data: bytes) -> bytes:
    at = data.index(b"OpenImageIO")  # the Software attribute's text
    return data[:at] + b"\xc7\x28" + data[at + 2 :]


DAMAGED = {
    "truncated": lambda: _first_half(raw("openexr-images/ScanLines/Carrots.exr")),
    "truncated_multipart": lambda: raw("openexr-images/Beachball/multipart.0001.exr")[:1_000_000],
    "flipped_zip": lambda: _flip_middle(raw("openexr-images/ScanLines/Carrots.exr")),
    # 9 of the 10 parts still read: only the part count gives it away
    "flipped_multipart": lambda: _flip_middle(raw("openexr-images/Beachball/multipart.0001.exr")),
    "bad_utf8_attribute": lambda: _bad_utf8_attribute(raw("go-openexr/grad_uint_zip.exr")),
    "header_only": lambda: raw("openexr/test.exr")[:300],
    "magic_then_random": lambda: b"\x76\x2f\x31\x01" + np.random.default_rng(1).bytes(4096),
    "random": lambda: np.random.default_rng(2).bytes(4096),
    "empty": lambda: b"",
    "png": lambda: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_damaged_input_raises_frame_error_only(case: str) -> None:
    data = DAMAGED[case]()
    with pytest.raises(FrameError) as info:  # any other exception type fails the test
        decode_exr(data, f"shot.{case}.exr")
    assert f"shot.{case}.exr" in str(info.value)


def test_fewer_parts_than_header_says() -> None:
    with pytest.raises(FrameError, match=r"header lists 10 part\(s\) but only 9"):
        decode_exr(_flip_middle(raw("openexr-images/Beachball/multipart.0001.exr")), "multipart.0001.exr")


@pytest.mark.parametrize(
    ("rel", "view", "expected"),
    [
        ("openexr-images/TestImages/WideFloatRange.exr", None, r"G present but R, B missing.*are: G"),
        ("go-openexr/grad_uint_zip.exr", None, r"uint colour channels cannot be processed.*to half/float"),
        ("openexr-images/Chromaticities/Rec709_YC.exr", None, r"luminance/chroma.*convert it to RGB"),
        ("openexr-images/Beachball/multipart.0001.exr", "centre", r"views in this file: right, left"),
        ("openexr-images/Beachball/singlepart.0001.exr", "centre", r"views in this file: right, left"),
        ("openexr-images/ScanLines/Carrots.exr", "left", r"this file has no views"),
    ],
)
def test_select_colour_rejects_clearly(rel: str, view: str | None, expected: str) -> None:
    image = load(rel)
    with pytest.raises(FrameError, match=expected) as info:
        select_colour(image, view)
    assert Path(rel).name in str(info.value)


def test_no_colour_channels_lists_what_is_there() -> None:
    image = load("openexr-images/Beachball/multipart.0001.exr")
    image.parts = [image.parts[1]]  # depth_left: Z only
    with pytest.raises(FrameError, match=r"no R,G,B or Y channels; channels are: Z"):
        select_colour(image)


# --------------------------------------------------------------------------- colour selection


SAME_COLOUR_CASES = [
    *[(f"openexr-images/Beachball/singlepart.000{i}.exr", None) for i in range(1, 9)],
    ("openexr-images/Beachball/singlepart.0001.exr", "left"),
    ("openexr-images/Beachball/multipart.0001.exr", None),
    ("openexr-images/Beachball/multipart.0001.exr", "left"),
    ("openexr-images/ScanLines/Carrots.exr", None),
    ("openexr-images/DisplayWindow/t15.exr", None),
    ("openexr-images/DisplayWindow/t08.exr", None),
    ("openexr-images/TestImages/AllHalfValues.exr", None),
    ("openexr-images/TestImages/GrayRampsHorizontal.exr", None),
    ("openexr-images/MultiResolution/ColorCodedLevels.exr", None),
    ("openexr/test.exr", None),
    ("openexr/manifest_id.exr", None),
    ("openexr/comp_dwaa_v2.exr", None),
    ("cryptomatte/special_chars.exr", None),
    ("cryptomatte/multichannel.exr", None),
]


@pytest.mark.parametrize(("rel", "view"), SAME_COLOUR_CASES)
def test_replacing_colour_with_itself_is_bit_exact(rel: str, view: str | None) -> None:
    source = load(rel)
    plane = select_colour(source, view)
    part = source.parts[plane.part_index]
    assert plane.rgb.dtype == np.float32 and plane.rgb.flags.c_contiguous
    assert plane.rgb.shape[2] == 3
    out = replace_colour(source, plane, plane.rgb, plane.alpha, provenance={"pass": "noop"})
    back = round_trip(out)
    assert len(back.parts) == 1
    written = back.parts[0]
    assert list(written.channels) == list(part.channels)  # other channels kept at scale 1
    for name, pixels in part.channels.items():
        assert written.channels[name].dtype == pixels.dtype, name
        assert bits(written.channels[name]) == bits(pixels), name
    assert box(written.header, "dataWindow") == plane.data_window == box(part.header, "dataWindow")
    assert box(written.header, "displayWindow") == plane.display_window
    assert written.header["pixelAspectRatio"] == plane.pixel_aspect
    assert written.header["shotpass/pass"] == "noop"
    for key in ("chromaticities", "multiView", "view", "adoptedNeutral", "owner"):
        if key in part.header:
            assert same_attribute(part.header[key], written.header[key]), key


def test_multipart_default_and_left_view() -> None:
    image = load("openexr-images/Beachball/multipart.0001.exr")
    default = select_colour(image)
    assert (default.part_index, default.view, default.layout) == (0, "right", "rgba")
    assert default.channel_names == ("R", "G", "B", "A")
    assert default.data_window == (654, 245, 1530, 1120)
    left = select_colour(image, "left")
    assert image.parts[left.part_index].header["name"] == "rgba_left"
    assert left.part_index == 4 and left.view == "left"


def test_singlepart_multiview_channels() -> None:
    image = load("openexr-images/Beachball/singlepart.0001.exr")
    right = select_colour(image)
    assert right.channel_names == ("R", "G", "B", "A") and right.view == "right"
    left = select_colour(image, "left")
    assert left.channel_names == ("left.R", "left.G", "left.B", "left.A")
    assert left.dtypes["left.R"] == np.float16
    assert bits(left.rgb[..., 0].astype(np.float16)) == bits(image.parts[0].channels["left.R"])
    assert not np.array_equal(left.rgb, right.rgb)


def test_left_view_alone_becomes_a_plain_left_view_file() -> None:
    image = load("openexr-images/Beachball/singlepart.0001.exr")
    left = select_colour(image, "left")
    out = round_trip(replace_colour(image, left, left.rgb, left.alpha, keep_other_channels=False))
    part = out.parts[0]
    assert sorted(part.channels) == ["A", "B", "G", "R"]
    assert "multiView" not in part.header and part.header["view"] == "left"
    assert bits(part.channels["R"]) == bits(image.parts[0].channels["left.R"])
    again = select_colour(out)
    assert again.view == "left" and again.channel_names == ("R", "G", "B", "A")


def test_luminance_file_is_grey_and_writes_back_y() -> None:
    image = load("openexr-images/TestImages/GrayRampsHorizontal.exr")
    plane = select_colour(image)
    assert plane.layout == "y" and plane.channel_names == ("Y",) and plane.alpha is None
    assert np.array_equal(plane.rgb[..., 0], plane.rgb[..., 2])
    out = round_trip(replace_colour(image, plane, plane.rgb, None))
    assert list(out.parts[0].channels) == ["Y"]
    assert out.parts[0].header[SOURCE_COMPRESSION_ATTR] == "pxr24"


def test_uint_channels_beside_colour_are_kept() -> None:
    image = load("openexr/manifest_id.exr")
    plane = select_colour(image)
    assert plane.layout == "rgba"
    out = round_trip(replace_colour(image, plane, plane.rgb * 0.5, plane.alpha))
    assert out.parts[0].channels["id"].dtype == np.uint32
    assert bits(out.parts[0].channels["id"]) == bits(image.parts[0].channels["id"])
    assert out.parts[0].channels["R"].dtype == np.float16


def test_nan_and_inf_are_not_altered_by_selection_and_finite_fixes_them() -> None:
    image = load("openexr-images/TestImages/AllHalfValues.exr")
    plane = select_colour(image)
    assert np.isnan(plane.rgb).any() and np.isposinf(plane.rgb).any() and np.isneginf(plane.rgb).any()
    clean = finite(plane.rgb)
    assert np.isfinite(clean).all()
    assert clean.max() == 65504 and clean.min() == -65504
    assert clean[np.isnan(plane.rgb)].max() == 0
    assert np.isnan(plane.rgb).any()  # finite() returned a copy


def test_scale_four_windows_and_pixels() -> None:
    image = load("openexr-images/Beachball/singlepart.0006.exr")
    plane = select_colour(image)
    assert plane.data_window == (1176, 224, 2095, 1085)
    k = 4
    big = np.repeat(np.repeat(plane.rgb, k, axis=0), k, axis=1)
    out = replace_colour(image, plane, big, None, scale=k, provenance={"pass": "upscale", "scale": k})
    back = round_trip(out)
    header = back.parts[0].header
    assert box(header, "dataWindow") == (4704, 896, 8383, 4343)
    assert box(header, "displayWindow") == (0, 0, 8191, 6223)
    assert sorted(back.parts[0].channels) == ["A", "B", "G", "R"]  # other channels dropped
    assert "multiView" not in header and header["view"] == "right"
    assert header["shotpass/scale"] == "4"
    r = back.parts[0].channels["R"]
    assert r.shape == (862 * k, 920 * k) and r.dtype == np.float16
    assert bits(r[::k, ::k]) == bits(image.parts[0].channels["R"])
    # alpha=None: the source alpha is repeated, not dropped
    assert bits(back.parts[0].channels["A"][::k, ::k]) == bits(image.parts[0].channels["A"])


def test_replace_colour_checks_sizes() -> None:
    image = load("openexr/test.exr")
    plane = select_colour(image)
    with pytest.raises(ValueError, match="rgb must be"):
        replace_colour(image, plane, plane.rgb, None, scale=2)
    with pytest.raises(ValueError, match="scale"):
        replace_colour(image, plane, plane.rgb, None, scale=0)


def test_alpha_added_to_rgb_file_uses_colour_dtype() -> None:
    image = load("openexr/test.exr")
    plane = select_colour(image)
    assert plane.layout == "rgb" and plane.alpha is None
    alpha = np.full(plane.rgb.shape[:2], 0.25, dtype=np.float32)
    back = round_trip(replace_colour(image, plane, plane.rgb, alpha))
    assert back.parts[0].channels["A"].dtype == np.float32
    assert select_colour(back).layout == "rgba"


def test_luminance_with_alpha_is_ya() -> None:
    image = load("openexr-images/TestImages/GrayRampsHorizontal.exr")
    part = image.parts[0]
    part.channels["A"] = np.full_like(part.channels["Y"], 0.5)
    image = round_trip(image)
    plane = select_colour(image)
    assert plane.layout == "ya" and plane.channel_names == ("Y", "A")
    assert plane.alpha is not None and float(plane.alpha.max()) == 0.5
    grey = plane.rgb.copy()
    grey[..., 1] = 0.0  # a pass that tinted the grey: Y is written as the mean of R, G, B
    back = round_trip(replace_colour(image, plane, grey, plane.alpha))
    expected = ((plane.rgb[..., 0].astype(np.float64) * 2) / 3).astype(np.float16)
    assert bits(back.parts[0].channels["Y"]) == bits(expected)
    assert bits(back.parts[0].channels["A"]) == bits(part.channels["A"])


def _blender5_multipart(path: Path) -> None:
    """A multilayer EXR as Blender 5 writes it by default: one part per pass, channels keeping the
    "<view layer>.<pass>." names (checked against a file bpy 5.0 wrote)."""
    rng = np.random.default_rng(5)
    box_ = (np.array([0, 0], dtype=np.int32), np.array([15, 7], dtype=np.int32))
    window = {"dataWindow": box_, "displayWindow": box_}
    combined = {f"ViewLayer.Combined.{c}": rng.random((8, 16), dtype=np.float32) for c in "RGBA"}
    depth = {"ViewLayer.Depth.Z": np.full((8, 16), 7.5, dtype=np.float32)}
    parts = [
        OpenEXR.Part({"name": "ViewLayer.Combined", "type": OpenEXR.scanlineimage, **window}, combined),
        OpenEXR.Part({"name": "ViewLayer.Depth", "type": OpenEXR.scanlineimage, **window}, depth),
    ]
    OpenEXR.File(parts).write(str(path))


def test_blender5_multipart_plate_finds_its_combined_pass_and_depth(tmp_path: Path) -> None:
    from shotpass_server.frame_pipeline import _depth_for

    path = tmp_path / "blender5.0001.exr"
    _blender5_multipart(path)
    image = decode_exr(path.read_bytes(), path.name)
    plane = select_colour(image)
    assert plane.part_index == 0 and plane.layout == "rgba"
    assert plane.channel_names == tuple(f"ViewLayer.Combined.{c}" for c in "RGBA")
    depth = _depth_for(image, plane)
    assert depth is not None and np.all(depth == 7.5)  # from the Depth part beside the colour's
    out = round_trip(replace_colour(image, plane, plane.rgb * 0.5, plane.alpha))
    written = out.parts[0].channels["ViewLayer.Combined.R"]
    assert np.array_equal(written, (image.parts[0].channels["ViewLayer.Combined.R"] * 0.5).astype(np.float32))
