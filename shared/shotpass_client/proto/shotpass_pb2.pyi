from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RenderState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RENDER_STATE_UNSPECIFIED: _ClassVar[RenderState]
    QUEUED: _ClassVar[RenderState]
    RUNNING: _ClassVar[RenderState]
    FINISHED: _ClassVar[RenderState]
    FAILED: _ClassVar[RenderState]
    CANCELLED: _ClassVar[RenderState]
    SUSPENDED: _ClassVar[RenderState]

class FrameState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FRAME_STATE_UNSPECIFIED: _ClassVar[FrameState]
    FRAME_PENDING: _ClassVar[FrameState]
    FRAME_RUNNING: _ClassVar[FrameState]
    FRAME_DONE: _ClassVar[FrameState]
    FRAME_FAILED: _ClassVar[FrameState]
    FRAME_CANCELLED: _ClassVar[FrameState]
RENDER_STATE_UNSPECIFIED: RenderState
QUEUED: RenderState
RUNNING: RenderState
FINISHED: RenderState
FAILED: RenderState
CANCELLED: RenderState
SUSPENDED: RenderState
FRAME_STATE_UNSPECIFIED: FrameState
FRAME_PENDING: FrameState
FRAME_RUNNING: FrameState
FRAME_DONE: FrameState
FRAME_FAILED: FrameState
FRAME_CANCELLED: FrameState

class GetServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class OptionSpec(_message.Message):
    __slots__ = ("name", "type", "description", "default_value", "choices", "minimum", "maximum")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[OptionSpec.Type]
        STRING: _ClassVar[OptionSpec.Type]
        INT: _ClassVar[OptionSpec.Type]
        FLOAT: _ClassVar[OptionSpec.Type]
        BOOL: _ClassVar[OptionSpec.Type]
        CHOICE: _ClassVar[OptionSpec.Type]
    TYPE_UNSPECIFIED: OptionSpec.Type
    STRING: OptionSpec.Type
    INT: OptionSpec.Type
    FLOAT: OptionSpec.Type
    BOOL: OptionSpec.Type
    CHOICE: OptionSpec.Type
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_FIELD_NUMBER: _ClassVar[int]
    MAXIMUM_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: OptionSpec.Type
    description: str
    default_value: str
    choices: _containers.RepeatedScalarFieldContainer[str]
    minimum: float
    maximum: float
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[OptionSpec.Type, str]] = ..., description: _Optional[str] = ..., default_value: _Optional[str] = ..., choices: _Optional[_Iterable[str]] = ..., minimum: _Optional[float] = ..., maximum: _Optional[float] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "pass_name", "family", "description", "scale", "needs_mask", "uses_reference", "uses_prompt", "working_space", "frame_contract", "licence", "options", "unavailable", "reads_context_frames")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PASS_NAME_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    NEEDS_MASK_FIELD_NUMBER: _ClassVar[int]
    USES_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    USES_PROMPT_FIELD_NUMBER: _ClassVar[int]
    WORKING_SPACE_FIELD_NUMBER: _ClassVar[int]
    FRAME_CONTRACT_FIELD_NUMBER: _ClassVar[int]
    LICENCE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    UNAVAILABLE_FIELD_NUMBER: _ClassVar[int]
    READS_CONTEXT_FRAMES_FIELD_NUMBER: _ClassVar[int]
    name: str
    pass_name: str
    family: str
    description: str
    scale: int
    needs_mask: bool
    uses_reference: bool
    uses_prompt: bool
    working_space: str
    frame_contract: str
    licence: str
    options: _containers.RepeatedCompositeFieldContainer[OptionSpec]
    unavailable: str
    reads_context_frames: bool
    def __init__(self, name: _Optional[str] = ..., pass_name: _Optional[str] = ..., family: _Optional[str] = ..., description: _Optional[str] = ..., scale: _Optional[int] = ..., needs_mask: bool = ..., uses_reference: bool = ..., uses_prompt: bool = ..., working_space: _Optional[str] = ..., frame_contract: _Optional[str] = ..., licence: _Optional[str] = ..., options: _Optional[_Iterable[_Union[OptionSpec, _Mapping]]] = ..., unavailable: _Optional[str] = ..., reads_context_frames: bool = ...) -> None: ...

class PassInfo(_message.Message):
    __slots__ = ("name", "description", "models", "default_model")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    models: _containers.RepeatedScalarFieldContainer[str]
    default_model: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ..., default_model: _Optional[str] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_chunk_bytes", "max_message_bytes", "max_frames_per_render", "max_blob_bytes")
    MAX_CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAMES_PER_RENDER_FIELD_NUMBER: _ClassVar[int]
    MAX_BLOB_BYTES_FIELD_NUMBER: _ClassVar[int]
    max_chunk_bytes: int
    max_message_bytes: int
    max_frames_per_render: int
    max_blob_bytes: int
    def __init__(self, max_chunk_bytes: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., max_frames_per_render: _Optional[int] = ..., max_blob_bytes: _Optional[int] = ...) -> None: ...

class ServerInfo(_message.Message):
    __slots__ = ("version", "devices", "passes", "models", "limits", "colour_config", "default_colour_space", "colour_spaces", "digest_algorithms", "data_plane_port", "data_plane_tls")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    PASSES_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    COLOUR_CONFIG_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_COLOUR_SPACE_FIELD_NUMBER: _ClassVar[int]
    COLOUR_SPACES_FIELD_NUMBER: _ClassVar[int]
    DIGEST_ALGORITHMS_FIELD_NUMBER: _ClassVar[int]
    DATA_PLANE_PORT_FIELD_NUMBER: _ClassVar[int]
    DATA_PLANE_TLS_FIELD_NUMBER: _ClassVar[int]
    version: str
    devices: _containers.RepeatedScalarFieldContainer[str]
    passes: _containers.RepeatedCompositeFieldContainer[PassInfo]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    limits: Limits
    colour_config: str
    default_colour_space: str
    colour_spaces: _containers.RepeatedScalarFieldContainer[str]
    digest_algorithms: _containers.RepeatedScalarFieldContainer[str]
    data_plane_port: int
    data_plane_tls: bool
    def __init__(self, version: _Optional[str] = ..., devices: _Optional[_Iterable[str]] = ..., passes: _Optional[_Iterable[_Union[PassInfo, _Mapping]]] = ..., models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., colour_config: _Optional[str] = ..., default_colour_space: _Optional[str] = ..., colour_spaces: _Optional[_Iterable[str]] = ..., digest_algorithms: _Optional[_Iterable[str]] = ..., data_plane_port: _Optional[int] = ..., data_plane_tls: bool = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("pass_name",)
    PASS_NAME_FIELD_NUMBER: _ClassVar[int]
    pass_name: str
    def __init__(self, pass_name: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class ReloadModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FindBlobsRequest(_message.Message):
    __slots__ = ("digests",)
    DIGESTS_FIELD_NUMBER: _ClassVar[int]
    digests: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, digests: _Optional[_Iterable[str]] = ...) -> None: ...

class FindBlobsResponse(_message.Message):
    __slots__ = ("present", "missing", "partial")
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    present: _containers.RepeatedScalarFieldContainer[str]
    missing: _containers.RepeatedScalarFieldContainer[str]
    partial: _containers.RepeatedCompositeFieldContainer[PartialBlob]
    def __init__(self, present: _Optional[_Iterable[str]] = ..., missing: _Optional[_Iterable[str]] = ..., partial: _Optional[_Iterable[_Union[PartialBlob, _Mapping]]] = ...) -> None: ...

class PartialBlob(_message.Message):
    __slots__ = ("digest", "bytes_stored")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    BYTES_STORED_FIELD_NUMBER: _ClassVar[int]
    digest: str
    bytes_stored: int
    def __init__(self, digest: _Optional[str] = ..., bytes_stored: _Optional[int] = ...) -> None: ...

class UploadChunk(_message.Message):
    __slots__ = ("digest", "total_size", "offset", "data")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    digest: str
    total_size: int
    offset: int
    data: bytes
    def __init__(self, digest: _Optional[str] = ..., total_size: _Optional[int] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class BlobReceipt(_message.Message):
    __slots__ = ("digest", "size", "already_present")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ALREADY_PRESENT_FIELD_NUMBER: _ClassVar[int]
    digest: str
    size: int
    already_present: bool
    def __init__(self, digest: _Optional[str] = ..., size: _Optional[int] = ..., already_present: bool = ...) -> None: ...

class UploadBlobsResponse(_message.Message):
    __slots__ = ("blobs", "bytes_received")
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    blobs: _containers.RepeatedCompositeFieldContainer[BlobReceipt]
    bytes_received: int
    def __init__(self, blobs: _Optional[_Iterable[_Union[BlobReceipt, _Mapping]]] = ..., bytes_received: _Optional[int] = ...) -> None: ...

class DownloadBlobRequest(_message.Message):
    __slots__ = ("digest",)
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    digest: str
    def __init__(self, digest: _Optional[str] = ...) -> None: ...

class BlobChunk(_message.Message):
    __slots__ = ("digest", "total_size", "offset", "data")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    digest: str
    total_size: int
    offset: int
    data: bytes
    def __init__(self, digest: _Optional[str] = ..., total_size: _Optional[int] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class FrameInput(_message.Message):
    __slots__ = ("frame", "digest", "path", "name")
    FRAME_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    frame: int
    digest: str
    path: str
    name: str
    def __init__(self, frame: _Optional[int] = ..., digest: _Optional[str] = ..., path: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class Reference(_message.Message):
    __slots__ = ("digest", "render_frame", "name")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    RENDER_FRAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    digest: str
    render_frame: RenderFrame
    name: str
    def __init__(self, digest: _Optional[str] = ..., render_frame: _Optional[_Union[RenderFrame, _Mapping]] = ..., name: _Optional[str] = ...) -> None: ...

class RenderFrame(_message.Message):
    __slots__ = ("render_id", "frame")
    RENDER_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    render_id: str
    frame: int
    def __init__(self, render_id: _Optional[str] = ..., frame: _Optional[int] = ...) -> None: ...

class RenderSettings(_message.Message):
    __slots__ = ("pass_name", "model", "prompt", "negative_prompt", "options", "seed", "colour_space", "view", "priority", "reference", "frame_timeout_seconds", "prompt_by_frame", "options_by_frame")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class PromptByFrameEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: str
        def __init__(self, key: _Optional[int] = ..., value: _Optional[str] = ...) -> None: ...
    class OptionsByFrameEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: FrameValues
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[FrameValues, _Mapping]] = ...) -> None: ...
    PASS_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    COLOUR_SPACE_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    FRAME_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_BY_FRAME_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_BY_FRAME_FIELD_NUMBER: _ClassVar[int]
    pass_name: str
    model: str
    prompt: str
    negative_prompt: str
    options: _containers.ScalarMap[str, str]
    seed: int
    colour_space: str
    view: str
    priority: int
    reference: Reference
    frame_timeout_seconds: float
    prompt_by_frame: _containers.ScalarMap[int, str]
    options_by_frame: _containers.MessageMap[str, FrameValues]
    def __init__(self, pass_name: _Optional[str] = ..., model: _Optional[str] = ..., prompt: _Optional[str] = ..., negative_prompt: _Optional[str] = ..., options: _Optional[_Mapping[str, str]] = ..., seed: _Optional[int] = ..., colour_space: _Optional[str] = ..., view: _Optional[str] = ..., priority: _Optional[int] = ..., reference: _Optional[_Union[Reference, _Mapping]] = ..., frame_timeout_seconds: _Optional[float] = ..., prompt_by_frame: _Optional[_Mapping[int, str]] = ..., options_by_frame: _Optional[_Mapping[str, FrameValues]] = ...) -> None: ...

class FrameValues(_message.Message):
    __slots__ = ("values",)
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: str
        def __init__(self, key: _Optional[int] = ..., value: _Optional[str] = ...) -> None: ...
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.ScalarMap[int, str]
    def __init__(self, values: _Optional[_Mapping[int, str]] = ...) -> None: ...

class SubmitRenderRequest(_message.Message):
    __slots__ = ("project", "shot", "settings", "frames", "mask_frames", "parent_render", "parent_frames", "seed_set", "label", "job_key", "digest_algorithm", "context_frames")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SHOT_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    MASK_FRAMES_FIELD_NUMBER: _ClassVar[int]
    PARENT_RENDER_FIELD_NUMBER: _ClassVar[int]
    PARENT_FRAMES_FIELD_NUMBER: _ClassVar[int]
    SEED_SET_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    JOB_KEY_FIELD_NUMBER: _ClassVar[int]
    DIGEST_ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FRAMES_FIELD_NUMBER: _ClassVar[int]
    project: str
    shot: str
    settings: RenderSettings
    frames: _containers.RepeatedCompositeFieldContainer[FrameInput]
    mask_frames: _containers.RepeatedCompositeFieldContainer[FrameInput]
    parent_render: str
    parent_frames: _containers.RepeatedScalarFieldContainer[int]
    seed_set: bool
    label: str
    job_key: str
    digest_algorithm: str
    context_frames: _containers.RepeatedCompositeFieldContainer[FrameInput]
    def __init__(self, project: _Optional[str] = ..., shot: _Optional[str] = ..., settings: _Optional[_Union[RenderSettings, _Mapping]] = ..., frames: _Optional[_Iterable[_Union[FrameInput, _Mapping]]] = ..., mask_frames: _Optional[_Iterable[_Union[FrameInput, _Mapping]]] = ..., parent_render: _Optional[str] = ..., parent_frames: _Optional[_Iterable[int]] = ..., seed_set: bool = ..., label: _Optional[str] = ..., job_key: _Optional[str] = ..., digest_algorithm: _Optional[str] = ..., context_frames: _Optional[_Iterable[_Union[FrameInput, _Mapping]]] = ...) -> None: ...

class SubmitRenderResponse(_message.Message):
    __slots__ = ("render_id", "warnings", "render")
    RENDER_ID_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    RENDER_FIELD_NUMBER: _ClassVar[int]
    render_id: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    render: Render
    def __init__(self, render_id: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ..., render: _Optional[_Union[Render, _Mapping]] = ...) -> None: ...

class FrameRecord(_message.Message):
    __slots__ = ("frame", "input_digest", "input_name", "mask_digest", "output_digest", "state", "error", "compute_seconds", "attempts", "output_size")
    FRAME_FIELD_NUMBER: _ClassVar[int]
    INPUT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    INPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    MASK_DIGEST_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SIZE_FIELD_NUMBER: _ClassVar[int]
    frame: int
    input_digest: str
    input_name: str
    mask_digest: str
    output_digest: str
    state: FrameState
    error: str
    compute_seconds: float
    attempts: int
    output_size: int
    def __init__(self, frame: _Optional[int] = ..., input_digest: _Optional[str] = ..., input_name: _Optional[str] = ..., mask_digest: _Optional[str] = ..., output_digest: _Optional[str] = ..., state: _Optional[_Union[FrameState, str]] = ..., error: _Optional[str] = ..., compute_seconds: _Optional[float] = ..., attempts: _Optional[int] = ..., output_size: _Optional[int] = ...) -> None: ...

class Review(_message.Message):
    __slots__ = ("rating", "pinned", "note", "approved")
    RATING_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    APPROVED_FIELD_NUMBER: _ClassVar[int]
    rating: int
    pinned: bool
    note: str
    approved: bool
    def __init__(self, rating: _Optional[int] = ..., pinned: bool = ..., note: _Optional[str] = ..., approved: bool = ...) -> None: ...

class Render(_message.Message):
    __slots__ = ("id", "project", "shot", "version", "lane", "state", "settings", "parent_render", "frames", "created_at", "started_at", "finished_at", "compute_seconds", "device", "review", "error", "warnings", "frames_done", "frames_total", "label", "reference_digest", "scale", "children", "owner", "job_key", "qc", "next_frame_page_token")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SHOT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LANE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    PARENT_RENDER_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REVIEW_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_DONE_FIELD_NUMBER: _ClassVar[int]
    FRAMES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    JOB_KEY_FIELD_NUMBER: _ClassVar[int]
    QC_FIELD_NUMBER: _ClassVar[int]
    NEXT_FRAME_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    id: str
    project: str
    shot: str
    version: int
    lane: str
    state: RenderState
    settings: RenderSettings
    parent_render: str
    frames: _containers.RepeatedCompositeFieldContainer[FrameRecord]
    created_at: float
    started_at: float
    finished_at: float
    compute_seconds: float
    device: str
    review: Review
    error: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    frames_done: int
    frames_total: int
    label: str
    reference_digest: str
    scale: int
    children: _containers.RepeatedScalarFieldContainer[str]
    owner: str
    job_key: str
    qc: RenderQc
    next_frame_page_token: str
    def __init__(self, id: _Optional[str] = ..., project: _Optional[str] = ..., shot: _Optional[str] = ..., version: _Optional[int] = ..., lane: _Optional[str] = ..., state: _Optional[_Union[RenderState, str]] = ..., settings: _Optional[_Union[RenderSettings, _Mapping]] = ..., parent_render: _Optional[str] = ..., frames: _Optional[_Iterable[_Union[FrameRecord, _Mapping]]] = ..., created_at: _Optional[float] = ..., started_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., compute_seconds: _Optional[float] = ..., device: _Optional[str] = ..., review: _Optional[_Union[Review, _Mapping]] = ..., error: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ..., frames_done: _Optional[int] = ..., frames_total: _Optional[int] = ..., label: _Optional[str] = ..., reference_digest: _Optional[str] = ..., scale: _Optional[int] = ..., children: _Optional[_Iterable[str]] = ..., owner: _Optional[str] = ..., job_key: _Optional[str] = ..., qc: _Optional[_Union[RenderQc, _Mapping]] = ..., next_frame_page_token: _Optional[str] = ...) -> None: ...

class FramePairQc(_message.Message):
    __slots__ = ("frame_a", "frame_b", "source_error", "output_error", "ratio", "trusted")
    FRAME_A_FIELD_NUMBER: _ClassVar[int]
    FRAME_B_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ERROR_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_ERROR_FIELD_NUMBER: _ClassVar[int]
    RATIO_FIELD_NUMBER: _ClassVar[int]
    TRUSTED_FIELD_NUMBER: _ClassVar[int]
    frame_a: int
    frame_b: int
    source_error: float
    output_error: float
    ratio: float
    trusted: float
    def __init__(self, frame_a: _Optional[int] = ..., frame_b: _Optional[int] = ..., source_error: _Optional[float] = ..., output_error: _Optional[float] = ..., ratio: _Optional[float] = ..., trusted: _Optional[float] = ...) -> None: ...

class RenderQc(_message.Message):
    __slots__ = ("flicker_ratio", "source_error", "output_error", "pairs", "worst_pairs", "nonfinite_outputs", "nonfinite_sources", "contract_errors", "flow_source", "seconds")
    FLICKER_RATIO_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ERROR_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_ERROR_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    WORST_PAIRS_FIELD_NUMBER: _ClassVar[int]
    NONFINITE_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    NONFINITE_SOURCES_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_ERRORS_FIELD_NUMBER: _ClassVar[int]
    FLOW_SOURCE_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    flicker_ratio: float
    source_error: float
    output_error: float
    pairs: _containers.RepeatedCompositeFieldContainer[FramePairQc]
    worst_pairs: _containers.RepeatedCompositeFieldContainer[FramePairQc]
    nonfinite_outputs: int
    nonfinite_sources: int
    contract_errors: _containers.RepeatedScalarFieldContainer[str]
    flow_source: str
    seconds: float
    def __init__(self, flicker_ratio: _Optional[float] = ..., source_error: _Optional[float] = ..., output_error: _Optional[float] = ..., pairs: _Optional[_Iterable[_Union[FramePairQc, _Mapping]]] = ..., worst_pairs: _Optional[_Iterable[_Union[FramePairQc, _Mapping]]] = ..., nonfinite_outputs: _Optional[int] = ..., nonfinite_sources: _Optional[int] = ..., contract_errors: _Optional[_Iterable[str]] = ..., flow_source: _Optional[str] = ..., seconds: _Optional[float] = ...) -> None: ...

class WatchRenderRequest(_message.Message):
    __slots__ = ("render_id", "after_sequence")
    RENDER_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    render_id: str
    after_sequence: int
    def __init__(self, render_id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class RenderEvent(_message.Message):
    __slots__ = ("render_id", "sequence", "time", "kind", "frame", "digest", "step", "total_steps", "position", "message", "state", "frames_done", "frames_total")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[RenderEvent.Kind]
        QUEUED: _ClassVar[RenderEvent.Kind]
        STARTED: _ClassVar[RenderEvent.Kind]
        STEP: _ClassVar[RenderEvent.Kind]
        FRAME_DONE: _ClassVar[RenderEvent.Kind]
        FRAME_FAILED: _ClassVar[RenderEvent.Kind]
        WARNING: _ClassVar[RenderEvent.Kind]
        FINISHED: _ClassVar[RenderEvent.Kind]
        RESUMED: _ClassVar[RenderEvent.Kind]
        SUSPENDED: _ClassVar[RenderEvent.Kind]
        REQUEUED: _ClassVar[RenderEvent.Kind]
    KIND_UNSPECIFIED: RenderEvent.Kind
    QUEUED: RenderEvent.Kind
    STARTED: RenderEvent.Kind
    STEP: RenderEvent.Kind
    FRAME_DONE: RenderEvent.Kind
    FRAME_FAILED: RenderEvent.Kind
    WARNING: RenderEvent.Kind
    FINISHED: RenderEvent.Kind
    RESUMED: RenderEvent.Kind
    SUSPENDED: RenderEvent.Kind
    REQUEUED: RenderEvent.Kind
    RENDER_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FRAMES_DONE_FIELD_NUMBER: _ClassVar[int]
    FRAMES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    render_id: str
    sequence: int
    time: float
    kind: RenderEvent.Kind
    frame: int
    digest: str
    step: int
    total_steps: int
    position: int
    message: str
    state: RenderState
    frames_done: int
    frames_total: int
    def __init__(self, render_id: _Optional[str] = ..., sequence: _Optional[int] = ..., time: _Optional[float] = ..., kind: _Optional[_Union[RenderEvent.Kind, str]] = ..., frame: _Optional[int] = ..., digest: _Optional[str] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., position: _Optional[int] = ..., message: _Optional[str] = ..., state: _Optional[_Union[RenderState, str]] = ..., frames_done: _Optional[int] = ..., frames_total: _Optional[int] = ...) -> None: ...

class GetRenderRequest(_message.Message):
    __slots__ = ("render_id", "frame_page_size", "frame_page_token")
    RENDER_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    FRAME_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    render_id: str
    frame_page_size: int
    frame_page_token: str
    def __init__(self, render_id: _Optional[str] = ..., frame_page_size: _Optional[int] = ..., frame_page_token: _Optional[str] = ...) -> None: ...

class ListRendersRequest(_message.Message):
    __slots__ = ("project", "shot", "limit")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SHOT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    project: str
    shot: str
    limit: int
    def __init__(self, project: _Optional[str] = ..., shot: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListRendersResponse(_message.Message):
    __slots__ = ("renders",)
    RENDERS_FIELD_NUMBER: _ClassVar[int]
    renders: _containers.RepeatedCompositeFieldContainer[Render]
    def __init__(self, renders: _Optional[_Iterable[_Union[Render, _Mapping]]] = ...) -> None: ...

class CancelRenderRequest(_message.Message):
    __slots__ = ("render_id",)
    RENDER_ID_FIELD_NUMBER: _ClassVar[int]
    render_id: str
    def __init__(self, render_id: _Optional[str] = ...) -> None: ...

class PreviewFrameRequest(_message.Message):
    __slots__ = ("render", "timeout_seconds")
    RENDER_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    render: SubmitRenderRequest
    timeout_seconds: float
    def __init__(self, render: _Optional[_Union[SubmitRenderRequest, _Mapping]] = ..., timeout_seconds: _Optional[float] = ...) -> None: ...

class PreviewFrameResponse(_message.Message):
    __slots__ = ("render_id", "frame", "output_digest", "warnings", "render")
    RENDER_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    RENDER_FIELD_NUMBER: _ClassVar[int]
    render_id: str
    frame: int
    output_digest: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    render: Render
    def __init__(self, render_id: _Optional[str] = ..., frame: _Optional[int] = ..., output_digest: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ..., render: _Optional[_Union[Render, _Mapping]] = ...) -> None: ...

class ReviewRenderRequest(_message.Message):
    __slots__ = ("render_id", "rating", "pinned", "note", "approved")
    RENDER_ID_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    APPROVED_FIELD_NUMBER: _ClassVar[int]
    render_id: str
    rating: int
    pinned: bool
    note: str
    approved: bool
    def __init__(self, render_id: _Optional[str] = ..., rating: _Optional[int] = ..., pinned: bool = ..., note: _Optional[str] = ..., approved: bool = ...) -> None: ...

class SuspendRenderRequest(_message.Message):
    __slots__ = ("render_id",)
    RENDER_ID_FIELD_NUMBER: _ClassVar[int]
    render_id: str
    def __init__(self, render_id: _Optional[str] = ...) -> None: ...

class ResumeRenderRequest(_message.Message):
    __slots__ = ("render_id",)
    RENDER_ID_FIELD_NUMBER: _ClassVar[int]
    render_id: str
    def __init__(self, render_id: _Optional[str] = ...) -> None: ...

class RequeueRenderRequest(_message.Message):
    __slots__ = ("render_id", "frame_timeout_seconds")
    RENDER_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    render_id: str
    frame_timeout_seconds: float
    def __init__(self, render_id: _Optional[str] = ..., frame_timeout_seconds: _Optional[float] = ...) -> None: ...

class SetRenderPriorityRequest(_message.Message):
    __slots__ = ("render_id", "priority")
    RENDER_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    render_id: str
    priority: int
    def __init__(self, render_id: _Optional[str] = ..., priority: _Optional[int] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ("project", "shot")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SHOT_FIELD_NUMBER: _ClassVar[int]
    project: str
    shot: str
    def __init__(self, project: _Optional[str] = ..., shot: _Optional[str] = ...) -> None: ...

class ShotStats(_message.Message):
    __slots__ = ("project", "shot", "renders", "previews", "frames_done", "frames_failed", "device_seconds")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SHOT_FIELD_NUMBER: _ClassVar[int]
    RENDERS_FIELD_NUMBER: _ClassVar[int]
    PREVIEWS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_DONE_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FAILED_FIELD_NUMBER: _ClassVar[int]
    DEVICE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    project: str
    shot: str
    renders: int
    previews: int
    frames_done: int
    frames_failed: int
    device_seconds: float
    def __init__(self, project: _Optional[str] = ..., shot: _Optional[str] = ..., renders: _Optional[int] = ..., previews: _Optional[int] = ..., frames_done: _Optional[int] = ..., frames_failed: _Optional[int] = ..., device_seconds: _Optional[float] = ...) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("shots",)
    SHOTS_FIELD_NUMBER: _ClassVar[int]
    shots: _containers.RepeatedCompositeFieldContainer[ShotStats]
    def __init__(self, shots: _Optional[_Iterable[_Union[ShotStats, _Mapping]]] = ...) -> None: ...
