"""Bounded fuzzing of the wire contract and of the EXR intake.

Hostile requests against one real server must get a domain status code (never UNKNOWN or INTERNAL, never a
reply too large to deliver) and the server must keep answering. Mutated real EXRs must give FrameError (or
another ShotpassError) from decode_exr: no other exception, no hang, no crash. The decoder fuzz runs in a child
process, so a crash inside the OpenEXR library fails this test instead of killing the test run.

Reproducible: derandomized, no example database; bounded by max_examples (about 25 s in all on two cores).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import grpc
import pytest
from conftest import EXR
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shotpass_client.proto import shotpass_pb2 as pb
from shotpass_client.proto import shotpass_pb2_grpc as pb_grpc
from shotpass_server.validation import MAX_MESSAGE

SMALL = EXR / "openexr" / "test.exr"  # 10x20, three float channels, ZIP
SMALL_BYTES = SMALL.read_bytes() if SMALL.is_file() else b""
SMALL_DIGEST = hashlib.sha256(SMALL_BYTES).hexdigest()


def fuzz_settings(examples: int) -> settings:
    return settings(
        derandomize=True,
        database=None,
        deadline=None,
        max_examples=examples,
        print_blob=False,
        suppress_health_check=list(HealthCheck),
    )


# Every status a hostile request may get: the domain's answers, and gRPC's own message-size refusal.
EXPECTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}
CALL_TIMEOUT = 20.0


# ---------------------------------------------------------------- the server under fuzz


@dataclass
class Live:
    address: str
    stub: Any
    render_id: str  # a finished passthrough render of SMALL
    passes: List[str]
    models: List[str]
    option_keys: List[str]
    models_by_pass: Dict[str, List[str]]
    colour_spaces: List[str]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    assert SMALL_BYTES, f"test data not found at {SMALL}"
    data_dir = tmp_path_factory.mktemp("fuzz") / "server-data"
    srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=data_dir, chunk_frames=2))
    srv.start()
    # The client may send more than the server accepts, so oversized requests reach the server's own limit.
    channel = grpc.insecure_channel(srv.address, options=[("grpc.max_send_message_length", 64 << 20)])
    stub = pb_grpc.ShotPassStub(channel)
    try:
        stub.UploadBlobs(iter([pb.UploadChunk(digest=SMALL_DIGEST, total_size=len(SMALL_BYTES), data=SMALL_BYTES)]))
        frames = [pb.FrameInput(frame=1, digest=SMALL_DIGEST, name="test.0001.exr")]
        settings_ = pb.RenderSettings(pass_name="passthrough")
        render_id = stub.SubmitRender(pb.SubmitRenderRequest(settings=settings_, frames=frames)).render_id
        for _ in stub.WatchRender(pb.WatchRenderRequest(render_id=render_id), timeout=CALL_TIMEOUT):
            pass  # ends with the render's final event
        info = stub.GetServerInfo(pb.GetServerInfoRequest())
        yield Live(
            address=srv.address,
            stub=stub,
            render_id=render_id,
            passes=[p.name for p in info.passes],
            models=[m.name for m in info.models],
            option_keys=sorted({o.name for m in info.models for o in m.options}),
            models_by_pass={p.name: list(p.models) for p in info.passes},
            colour_spaces=list(info.colour_spaces)[:6],
        )
    finally:
        channel.close()
        srv.stop(grace=0.5)


def call(fn: Callable[[], Any]) -> grpc.StatusCode:
    """Run one RPC (draining a stream); fail on any status outside the domain's, or an undeliverable reply."""
    try:
        result = fn()
        if isinstance(result, Iterator):
            for _ in result:
                pass
        return grpc.StatusCode.OK
    except grpc.RpcError as err:
        code, details = err.code(), err.details() or ""
        assert code in EXPECTED, f"{code.name}: {details[:500]}"
        assert "metadata size" not in details, f"the reply was too large to deliver: {details[:300]}"
        assert len(details) <= MAX_MESSAGE, f"a {len(details)}-character message: {details[:300]}"
        # A client-side deadline means the server hung on the request.
        assert details != "Deadline Exceeded", "the server did not answer in time"
        return code


def still_serving(live: Live) -> None:
    assert live.stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=10).version


# ---------------------------------------------------------------- strategies

INT64 = st.one_of(
    st.sampled_from([0, 1, -1, 1001, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63 - 1, -(2**63)]),
    st.integers(-(2**63), 2**63 - 1),
)
INT32 = st.one_of(st.sampled_from([0, 1, -1, 5, 6, 1000, 1001, 2**31 - 1, -(2**31)]), st.integers(-(2**31), 2**31 - 1))
HUGE = st.builds(
    lambda piece, count: piece * count,
    st.sampled_from(["x", "\x00", "/", "\n", "é", "9", "ab", "%s"]),
    st.integers(150, 70_000),
)
SURROGATE_FREE = st.characters(exclude_categories=("Cs",))  # protobuf strings are UTF-8


def texts(*known: str) -> st.SearchStrategy[str]:
    hostile = [st.text(SURROGATE_FREE, max_size=40), HUGE]
    return st.one_of(st.sampled_from(known), *hostile) if known else st.one_of(*hostile)


def digests(live: Live) -> st.SearchStrategy[str]:
    return st.one_of(
        st.just(SMALL_DIGEST),
        st.text("0123456789abcdef", min_size=64, max_size=64),
        st.text("0123456789abcdefABCDEF", max_size=70),
        texts(),
    )


def render_ids(live: Live) -> st.SearchStrategy[str]:
    return st.one_of(st.just(live.render_id), st.just("r-000000000000"), texts())


def frame_inputs(live: Live) -> st.SearchStrategy[pb.FrameInput]:
    def build(frame: int, name: str, kind: str, digest: str, path: str) -> pb.FrameInput:
        f = pb.FrameInput(frame=frame, name=name)
        if kind == "digest":
            f.digest = digest
        elif kind == "path":
            f.path = path
        return f

    return st.builds(
        build,
        st.one_of(st.integers(-3, 3), INT64),
        texts("test.0001.exr"),
        st.sampled_from(["digest", "digest", "path", "none"]),
        digests(live),
        texts(str(SMALL), "/etc/passwd", "../../x.exr"),
    )


OPTION_VALUES = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "1e400", "-1", "0", "1", "0.5", "true", "yes", "9" * 5000, "1_000", " 3 "]),
    st.integers().map(str),
    st.floats().map(str),
    texts(),
)


def submits(live: Live) -> st.SearchStrategy[pb.SubmitRenderRequest]:
    """Mostly well-formed requests with a few fields made hostile, so the checks behind the first are reached."""
    return st.builds(_corrupted, well_formed_submits(live), st.lists(corruptions(live), max_size=3))


def _corrupted(request: pb.SubmitRenderRequest, changes: List[Callable[[Any], None]]) -> pb.SubmitRenderRequest:
    for change in changes:
        change(request)
    return request


def well_formed_submits(live: Live) -> st.SearchStrategy[pb.SubmitRenderRequest]:
    def build(model, by_pass, options, seed, seed_set, colour, priority, numbers, masked, ref, chained):
        pass_name = next(p for p, models in live.models_by_pass.items() if model in models)
        settings_ = pb.RenderSettings(
            pass_name=pass_name if by_pass else "", model="" if by_pass else model, options=options, seed=seed,
            colour_space=colour, priority=priority, prompt="a painted plate",
        )
        if ref == "digest":
            settings_.reference.digest = SMALL_DIGEST
        elif ref == "render":
            settings_.reference.render_frame.render_id = live.render_id
        frames = [pb.FrameInput(frame=n, digest=SMALL_DIGEST, name=f"test.{n:04d}.exr") for n in numbers]
        if chained:
            return pb.SubmitRenderRequest(settings=settings_, parent_render=live.render_id, parent_frames=numbers[:1])
        return pb.SubmitRenderRequest(
            project="fuzz", shot="sh010", settings=settings_, frames=frames, mask_frames=frames if masked else [],
            seed_set=seed_set, label="fuzz",
        )

    return st.builds(
        build,
        st.sampled_from(live.models),
        st.booleans(),
        st.dictionaries(st.sampled_from(live.option_keys), OPTION_VALUES, max_size=2),
        INT64,
        st.booleans(),
        st.sampled_from(["", *live.colour_spaces]),
        INT32,
        st.lists(st.one_of(st.integers(-3, 3), st.integers(1001, 1004)), min_size=1, max_size=3, unique=True),
        st.booleans(),
        st.sampled_from(["none", "digest", "render"]),
        st.booleans(),
    )


def _setter(path: str) -> Callable[[Any], Callable[[Any], None]]:
    """value -> a change that puts it at `path` ("settings.model", "frames.0.digest"); missing items are skipped."""

    def with_value(value: Any) -> Callable[[Any], None]:
        def change(message: Any) -> None:
            *parents, last = path.split(".")
            for part in parents:
                if part.isdigit():
                    if int(part) >= len(message):
                        return
                    message = message[int(part)]
                else:
                    message = getattr(message, part)
            if isinstance(value, (list, dict)):
                field = getattr(message, last)
                if isinstance(value, dict):
                    field.clear()
                    field.update(value)
                else:
                    del field[:]
                    field.extend(value)
            else:
                setattr(message, last, value)

        return change

    return with_value


def corruptions(live: Live) -> st.SearchStrategy[Callable[[Any], None]]:
    hostile_text = {
        "project": texts(), "shot": texts(), "label": texts(), "settings.pass_name": texts(*live.passes),
        "settings.model": texts(*live.models), "settings.prompt": texts(), "settings.negative_prompt": texts(),
        "settings.colour_space": texts(), "settings.view": texts("left", "right"), "parent_render": render_ids(live),
        "frames.0.name": texts(), "frames.1.path": texts(str(SMALL), "/etc/passwd", "../../x.exr"),
        "frames.0.digest": digests(live), "mask_frames.0.digest": digests(live),
        "context_frames.0.digest": digests(live),
        "context_frames.0.path": texts(str(SMALL), "/etc/passwd", "../../x.exr"),
        "settings.reference.digest": digests(live),
        "settings.reference.render_frame.render_id": render_ids(live),
        "job_key": texts("job-1", "a/b"),
    }
    numbers = {
        "settings.frame_timeout_seconds": st.floats(allow_nan=True, allow_infinity=True),
        "frames.0.frame": INT64, "mask_frames.0.frame": INT64, "context_frames.0.frame": INT64,
        "settings.seed": INT64, "settings.priority": INT32,
        "settings.reference.render_frame.frame": INT64,
    }
    lists = {
        "parent_frames": st.lists(INT64, max_size=4),
        "settings.options": st.dictionaries(texts(*live.option_keys), OPTION_VALUES, max_size=4),
        "frames": st.lists(frame_inputs(live), max_size=4),
        "mask_frames": st.lists(frame_inputs(live), max_size=2),
        "context_frames": st.lists(frame_inputs(live), max_size=3),
    }
    return st.one_of(*(values.map(_setter(path)) for path, values in {**hostile_text, **numbers, **lists}.items()))


def upload_streams(live: Live) -> st.SearchStrategy[List[pb.UploadChunk]]:
    """Chunk streams: well-formed blobs bent out of order, size or digest, and arbitrary chunks."""

    def bent(data: bytes, cuts: List[int], how: str, value: int) -> List[pb.UploadChunk]:
        digest = hashlib.sha256(data).hexdigest()
        edges = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
        chunks = [
            pb.UploadChunk(digest=digest, total_size=len(data), offset=a, data=data[a:b])
            for a, b in zip(edges, edges[1:])
        ] or [pb.UploadChunk(digest=digest, total_size=0, offset=0)]
        victim = chunks[value % len(chunks)]
        if how == "reverse":
            chunks.reverse()
        elif how == "drop_last":
            chunks.pop()
        elif how == "total_size":
            victim.total_size = value
        elif how == "offset":
            victim.offset = value
        elif how == "digest":
            victim.digest = hashlib.sha256(str(value).encode()).hexdigest()
        elif how == "repeat":
            chunks.append(chunks[0])
        return chunks

    arbitrary = st.lists(
        st.builds(pb.UploadChunk, digest=digests(live), total_size=INT64, offset=INT64, data=st.binary(max_size=64)),
        min_size=1,
        max_size=4,
    )
    well_formed = st.builds(
        bent,
        st.binary(max_size=3000),
        st.lists(st.integers(0, 3000), max_size=3),
        st.sampled_from(["none", "reverse", "drop_last", "total_size", "offset", "digest", "repeat"]),
        INT64,
    )
    return st.one_of(well_formed, arbitrary)


def query_calls(live: Live) -> st.SearchStrategy[Callable[[], Any]]:
    """One read or review RPC with hostile fields, as a ready-to-run call."""
    stub = live.stub

    def review(render_id: str, fields: dict) -> Callable[[], Any]:
        return lambda: stub.ReviewRender(pb.ReviewRenderRequest(render_id=render_id, **fields), timeout=CALL_TIMEOUT)

    review_fields = st.fixed_dictionaries(
        {},
        optional={"rating": INT32, "pinned": st.booleans(), "note": texts(""), "approved": st.booleans()},
    )
    return st.one_of(
        st.builds(lambda d: lambda: stub.FindBlobs(pb.FindBlobsRequest(digests=d), timeout=CALL_TIMEOUT),
                  st.lists(digests(live), max_size=8)),
        st.builds(lambda d: lambda: stub.DownloadBlob(pb.DownloadBlobRequest(digest=d), timeout=CALL_TIMEOUT),
                  digests(live)),
        st.builds(lambda r, a: lambda: stub.WatchRender(pb.WatchRenderRequest(render_id=r, after_sequence=a),
                                                        timeout=CALL_TIMEOUT),
                  render_ids(live), INT64),
        st.builds(lambda r: lambda: stub.GetRender(pb.GetRenderRequest(render_id=r), timeout=CALL_TIMEOUT),
                  render_ids(live)),
        st.builds(lambda r: lambda: stub.CancelRender(pb.CancelRenderRequest(render_id=r), timeout=CALL_TIMEOUT),
                  render_ids(live)),
        st.builds(lambda p, s, n: lambda: stub.ListRenders(pb.ListRendersRequest(project=p, shot=s, limit=n),
                                                           timeout=CALL_TIMEOUT),
                  texts("", "fuzz", "default"), texts("", "sh010"), INT32),
        st.builds(lambda p: lambda: stub.ListModels(pb.ListModelsRequest(pass_name=p), timeout=CALL_TIMEOUT),
                  texts(*live.passes, "")),
        st.builds(review, render_ids(live), review_fields),
        # Job control and cost. Suspend only with ids that name no live render: a suspended render is never
        # final, so a later watch of it would (rightly) wait past the call timeout.
        st.builds(lambda r: lambda: stub.SuspendRender(pb.SuspendRenderRequest(render_id=r), timeout=CALL_TIMEOUT),
                  texts("", "r-000000000000", "../../etc/passwd")),
        st.builds(lambda r: lambda: stub.ResumeRender(pb.ResumeRenderRequest(render_id=r), timeout=CALL_TIMEOUT),
                  render_ids(live)),
        st.builds(lambda r, t: lambda: stub.RequeueRender(
            pb.RequeueRenderRequest(render_id=r, **({} if t is None else {"frame_timeout_seconds": t})),
            timeout=CALL_TIMEOUT), render_ids(live),
            st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))),
        st.builds(lambda r, n: lambda: stub.SetRenderPriority(pb.SetRenderPriorityRequest(render_id=r, priority=n),
                                                               timeout=CALL_TIMEOUT), render_ids(live), INT32),
        st.builds(lambda p, s: lambda: stub.GetStats(pb.GetStatsRequest(project=p, shot=s), timeout=CALL_TIMEOUT),
                  texts("", "fuzz", "default"), texts("", "sh010")),
    )


# ---------------------------------------------------------------- request fuzz


@fuzz_settings(120)
@given(data=st.data())
def test_submit_render_fuzz(live: Live, data: st.DataObject) -> None:
    request = data.draw(submits(live))
    call(lambda: live.stub.SubmitRender(request, timeout=CALL_TIMEOUT))


@fuzz_settings(60)
@given(data=st.data())
def test_preview_frame_fuzz(live: Live, data: st.DataObject) -> None:
    render = data.draw(submits(live))
    wait = data.draw(st.one_of(st.just(0.0), st.floats(0, 20), st.floats(allow_nan=True, allow_infinity=True)))
    call(lambda: live.stub.PreviewFrame(pb.PreviewFrameRequest(render=render, timeout_seconds=wait),
                                        timeout=CALL_TIMEOUT))


@fuzz_settings(60)
@given(data=st.data())
def test_upload_blobs_fuzz(live: Live, data: st.DataObject) -> None:
    chunks = data.draw(upload_streams(live))
    call(lambda: live.stub.UploadBlobs(iter(chunks), timeout=CALL_TIMEOUT))


@fuzz_settings(150)
@given(data=st.data())
def test_query_and_review_fuzz(live: Live, data: st.DataObject) -> None:
    call(data.draw(query_calls(live)))


def test_oversized_requests_get_domain_codes(live: Live) -> None:
    big = b"\0" * ((4 << 20) + 1)
    digest = hashlib.sha256(big).hexdigest()
    over_chunk = pb.UploadChunk(digest=digest, total_size=len(big), data=big)
    assert call(lambda: live.stub.UploadBlobs(iter([over_chunk]))) == grpc.StatusCode.INVALID_ARGUMENT
    # Requests may reach 16 MiB (a submit of 100 000 frames): a 6 MiB chunk is refused by the chunk check,
    # a message over 16 MiB by gRPC itself.
    over_chunk = pb.UploadChunk(digest=digest, total_size=6 << 20, data=b"\0" * (6 << 20))
    assert call(lambda: live.stub.UploadBlobs(iter([over_chunk]))) == grpc.StatusCode.INVALID_ARGUMENT
    over_message = pb.UploadChunk(digest=digest, total_size=17 << 20, data=b"\0" * (17 << 20))
    assert call(lambda: live.stub.UploadBlobs(iter([over_message]))) == grpc.StatusCode.RESOURCE_EXHAUSTED
    many = pb.FindBlobsRequest(digests=["a"] * 100_001)
    assert call(lambda: live.stub.FindBlobs(many)) == grpc.StatusCode.INVALID_ARGUMENT


def test_server_still_answers_after_the_fuzz(live: Live) -> None:
    """Runs after the fuzz tests above (file order): the same server answers and still renders."""
    still_serving(live)
    frames = [pb.FrameInput(frame=7, digest=SMALL_DIGEST, name="test.0007.exr")]
    answer = live.stub.PreviewFrame(
        pb.PreviewFrameRequest(render=pb.SubmitRenderRequest(settings=pb.RenderSettings(pass_name="passthrough"),
                                                             frames=frames)),
        timeout=CALL_TIMEOUT,
    )
    assert answer.frame == 7 and answer.output_digest


# ---------------------------------------------------------------- EXR intake fuzz

# Small real files covering ZIP, ZIPS, PIZ, PXR24, DWAA, tiled mipmaps, uint, subsampled and deep parts.
SEED_FILES = [
    "openexr/test.exr",
    "openexr/manifest_id.exr",
    "go-openexr/grad_uint_zip.exr",
    "cryptomatte/special_chars.exr",
    "openexr-images/TestImages/GrayRampsHorizontal.exr",
    "openexr-images/DisplayWindow/t08.exr",
    "openexr-images/MultiResolution/ColorCodedLevels.exr",
    "openexr-images/Chromaticities/Rec709_YC.exr",
    "openexr-images/v2/LowResLeftView/Trunks.exr",
    "openexr/comp_dwaa_v2.exr",
]
INTERESTING_INT32 = [0, 1, -1, 2, 15, 16, 255, 256, 65535, 99_999, 2**24, 2**31 - 1, -(2**31), 2**30]
WINDOWS = [b"dataWindow\0box2i\0", b"displayWindow\0box2i\0"]


def _put_int32(data: bytearray, pos: int, value: int) -> None:
    if 0 <= pos <= len(data) - 4:
        data[pos : pos + 4] = (value & 0xFFFFFFFF).to_bytes(4, "little")


def _mutate(data: bytearray, op: tuple) -> None:
    """One mutation; positions are taken modulo the length so every drawn op applies."""
    kind, where, value = op
    header_end = min(len(data), 2048)  # headers of the seed files lie within their first 2 KiB
    if len(data) <= 8:
        return
    if kind == "flip_header":
        data[8 + where % (header_end - 8)] ^= 1 << (value % 8)
    elif kind == "byte":
        data[8 + where % (len(data) - 8)] = value % 256
    elif kind == "int32_header":
        _put_int32(data, 8 + where % (header_end - 8), INTERESTING_INT32[value % len(INTERESTING_INT32)])
    elif kind == "window":
        at = data.find(WINDOWS[where % 2])
        if at >= 0:
            _put_int32(data, at + len(WINDOWS[where % 2]) + 4 + 4 * (value % 4),
                       INTERESTING_INT32[(where // 2) % len(INTERESTING_INT32)])
    elif kind == "compression":
        at = data.find(b"compression\0compression\0")
        if at >= 0 and at + 29 < len(data):
            data[at + 28] = value % 256
    elif kind == "truncate":
        del data[8 + where % (len(data) - 8) :]
    elif kind == "insert":
        pos = 8 + where % (len(data) - 8)
        data[pos:pos] = value.to_bytes(8, "little", signed=True)


MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["flip_header", "flip_header", "byte", "int32_header", "window", "compression", "truncate",
                         "insert"]),
        st.integers(0, 1 << 24),
        st.integers(-(2**63), 2**63 - 1),
    ),
    min_size=1,
    max_size=5,
)


@fuzz_settings(1500)
@given(seed=st.sampled_from(SEED_FILES), ops=MUTATIONS)
def decode_mutations(seed: str, ops: list) -> None:
    """The property the child process checks (not collected by pytest: it could crash the test run)."""
    from shotpass_server.errors import ShotpassError
    from shotpass_server.frames.exr import decode_exr, encode_exr, read_header_summary, select_colour

    data = bytearray((EXR / seed).read_bytes())
    for op in ops:
        _mutate(data, op)
    started = time.monotonic()
    try:
        read_header_summary(bytes(data), "fuzz.0001.exr")
        image = decode_exr(bytes(data), "fuzz.0001.exr")
        select_colour(image)
        encode_exr(image)
    except ShotpassError as err:
        assert "fuzz.0001.exr" in str(err), f"a message that does not name the file: {err}"
    assert time.monotonic() - started < 20, "one frame took over 20 s to refuse or decode"


def test_exr_intake_fuzz_in_a_child_process() -> None:
    tests = Path(__file__).resolve().parent
    script = f"import sys; sys.path.insert(0, {str(tests)!r}); import test_fuzz; test_fuzz.decode_mutations()"
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail("the EXR intake fuzz hung (over 240 s)")
    # OpenEXR prints its own complaints about damaged chunks on stderr; only the outcome matters.
    tail = "\n".join([line for line in done.stderr.splitlines() if "python_buffer" not in line][-40:])
    assert done.returncode == 0, f"decoder fuzz failed (exit {done.returncode}):\n{tail}"


@fuzz_settings(15)
@given(ops=MUTATIONS)
def test_mutated_frames_through_submit(live: Live, ops: list) -> None:
    """The submit path of the real server: a mutated frame is accepted or refused by name, never a crash."""
    data = bytearray(SMALL_BYTES)
    for op in ops:
        _mutate(data, op)
    blob = bytes(data)
    digest = hashlib.sha256(blob).hexdigest()
    live.stub.UploadBlobs(iter([pb.UploadChunk(digest=digest, total_size=len(blob), data=blob)]))
    request = pb.SubmitRenderRequest(
        settings=pb.RenderSettings(pass_name="stylize"),
        frames=[pb.FrameInput(frame=5, digest=digest, name="mutated.0005.exr")],
    )
    try:
        live.stub.SubmitRender(request, timeout=CALL_TIMEOUT)
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, f"{err.code().name}: {err.details()}"
        assert "mutated.0005.exr" in err.details() and "frame 5" in err.details(), err.details()
    still_serving(live)
